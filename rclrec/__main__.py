from rclrec.cli import main

raise SystemExit(main())
