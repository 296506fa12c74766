import sys

from crewtrace.cli import main

sys.exit(main())
