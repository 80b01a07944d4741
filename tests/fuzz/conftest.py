"""tests/fuzz is a package (see __init__.py); its files import the shared helpers as `harness`."""
import sys
from pathlib import Path

_here = str(Path(__file__).parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
