# Read-your-writes through the origin's own pools: each row created with
# User.create (the origin's write database) is read back at once with User.get
# (the origin's select() picks a "slave" database). Run next to origin.py, the
# origin program with its ports pointed at the proxy.
# Prints "found N of N" and exits 1 if any row was missing.
import sys

from origin import User, master_db

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 50

master_db.create_tables([User])
found = 0
for number in range(COUNT):
    email = f"reader{number}@example.com"
    User.create(name=f"reader{number}", email=email)
    try:
        user = User.get(User.email == email)
    except User.DoesNotExist:
        print(f"missing: {email}")
        continue
    if user.name == f"reader{number}":
        found += 1
    else:
        print(f"wrong row for {email}: {user.name}")
print(f"found {found} of {COUNT}")
sys.exit(0 if found == COUNT else 1)
