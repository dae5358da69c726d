# A stand-in for `neo-ir sim db check|repair|optimize --data-dir DIR --json` with the same
# contract: refuses (exit 2) while DIR/LOCK names a live process; check exits 0 healthy,
# 1 corrupt; optimize refuses a corrupt database (exit 1). Corruption is the file
# DIR/chain/CORRUPT.
import json
import os
import sys

cmd = sys.argv[1]
args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
data = args["--data-dir"]
lock = os.path.join(data, "LOCK")
if os.path.exists(lock):
    try:
        pid = int(open(lock).read().strip())
    except ValueError:
        pid = None
    if pid is None or os.path.exists(f"/proc/{pid}"):
        print(f"IO error: lock {lock}: already held by process", file=sys.stderr)
        sys.exit(2)
corrupt = os.path.join(data, "chain", "CORRUPT")
if cmd == "check":
    if os.path.exists(corrupt):
        print(json.dumps({"ok": False, "blocks": 17,
                          "first_bad": {"index": 17, "reason": "checksum mismatch"}}))
        sys.exit(1)
    print(json.dumps({"ok": True, "blocks": 42, "first_bad": None}))
elif cmd == "repair":
    dropped = 0
    if os.path.exists(corrupt):
        os.remove(corrupt)
        dropped = 25
    print(json.dumps({"dropped": dropped, "blocks": 17, "height": 16}))
elif cmd == "optimize":
    if os.path.exists(corrupt):
        print("Corruption: block 17: checksum mismatch; repair first", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"blocks": 42, "bytes_before": 4200, "bytes_after": 4200,
                      "temp_files_removed": 0}))
else:
    sys.exit(2)
