import sys

from cniscope.cli import main

sys.exit(main())
