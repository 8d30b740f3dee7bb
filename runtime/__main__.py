import sys

from runtime.infer import main

sys.exit(main())
