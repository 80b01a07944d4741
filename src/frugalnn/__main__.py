import sys

from frugalnn.cli import main

sys.exit(main())
