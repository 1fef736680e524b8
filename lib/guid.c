/*
 * guid.c - GUIDs (vss_id): parse, format, generate (libuuid).
 * The 16 bytes are kept in the order of the text form, so formatting and
 * parsing are exact inverses and comparisons are memcmp.
 */
#include <errno.h>
#include <string.h>
#include <uuid/uuid.h>

#include <vss/vss.h>

int vss_id_parse(const char *text, vss_id *out)
{
    char tmp[37];
    if (!text || !out)
        return -EINVAL;
    size_t n = strlen(text);
    if (n == 38 && text[0] == '{' && text[37] == '}') {
        memcpy(tmp, text + 1, 36);
    } else if (n == 36) {
        memcpy(tmp, text, 36);
    } else {
        return -EINVAL;
    }
    tmp[36] = '\0';
    uuid_t u;
    if (uuid_parse(tmp, u) != 0)
        return -EINVAL;
    memcpy(out->b, u, 16);
    return 0;
}

char *vss_id_format(const vss_id *id, char out[VSS_ID_STRLEN])
{
    out[0] = '{';
    uuid_unparse_lower(id->b, out + 1);
    out[37] = '}';
    out[38] = '\0';
    return out;
}

void vss_id_generate(vss_id *id)
{
    uuid_generate_random(id->b);
}

bool vss_id_is_null(const vss_id *id)
{
    static const vss_id zero;
    return memcmp(id, &zero, sizeof zero) == 0;
}

bool vss_id_equal(const vss_id *a, const vss_id *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}
