from routstr.cli import main

raise SystemExit(main())
