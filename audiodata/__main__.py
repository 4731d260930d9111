import sys

from audiodata.cli.main import main

sys.exit(main())
