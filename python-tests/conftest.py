import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ep_library() -> str:
    path = os.environ.get("ASYMO_EP_LIB", str(ROOT / "target/release/libasymo_ep.so"))
    if not Path(path).exists():
        pytest.fail(f"{path} does not exist: build it with `cargo build --release`")
    return path
