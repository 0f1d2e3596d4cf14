"""Where the suite finds the real recordings shared by the project (../shared/fixtures)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# CI lays a copy of shared/ beside the clone; KEEPERPAM_FIXTURES points elsewhere if needed.
FIXTURES = Path(os.environ.get("KEEPERPAM_FIXTURES", REPO.parent / "shared" / "fixtures"))
