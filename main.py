"""Start the CM Desktop GUI (same as the `cm-desktop` command)."""

import sys

from cm_desktop.app import main

if __name__ == "__main__":
    sys.exit(main())
