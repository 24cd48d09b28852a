"""Create the compose demo's throwaway credentials once: the mock's PKI plus a fixed-ID key."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from apns_exporter.mock import material
from apns_exporter.mock.pki import generate_signing_key

# The IDs apns-exporter.yml and mock.yml name; the mock's own key has random IDs.
KEY_ID = "COMPOSEKEY"
# The image's fixed non-root user, which runs both the exporter and the mock.
UID = GID = 10054


def main(directory: Path) -> None:
    """Generate what is missing in ``directory`` and hand it to the image's user."""
    material.load_or_generate(directory)
    key_file = directory / f"AuthKey_{KEY_ID}.p8"
    if not key_file.exists():
        key_file.write_bytes(generate_signing_key().private_pem)
    # This runs as root only to own the fresh volume; the services run as UID 10054.
    if os.geteuid() == 0:
        for path in (directory, *directory.iterdir()):
            os.chown(path, UID, GID)
    print(f"credentials ready in {directory}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/pki"))
