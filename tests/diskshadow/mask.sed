# mask.sed - makes a diskshadow transcript comparable between runs
# (tests/integration/diskshadow-scripts.sh; the runner first replaces the
# sandbox's temporary directory by @T@).
#
# Masked: the banner's host and time, creation times, machine names, and
# every GUID that a run generates (shadow, set, instance and volume IDs)
# as {GUID}. Kept: the IDs the scripts typed (echo, warning and vssd's
# "writer '...'" lines) and the fixed IDs of the fixtures: the Exchange
# writer class, the test and btrfs providers.
s/^On computer: .*/On computer:  HOST,  TIME/
s/(- Creation time: ).*/\1TIME/
s/(- Originating machine: ).*/\1HOST/
s/(- Service machine: ).*/\1HOST/
/^-> [^%]/ s/\{([0-9a-f-]{36})\}/<\1>/g
/^vssd: writer '\{/ s/\{([0-9a-f-]{36})\}/<\1>/g
/^Warning: / s/\{([0-9a-f-]{36})\}/<\1>/g
s/\{(76fe1ac4-15f7-4bcd-987e-8e1acb462fb7|7e571e57-0000-4000-8000-7e5700000001|6bb84250-afbc-4243-a67b-ecc1cbe3c8a8)\}/<\1>/g
s/\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}/{GUID}/g
s/<([0-9a-f-]{36})>/{\1}/g
