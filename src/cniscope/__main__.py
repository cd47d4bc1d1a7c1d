from cniscope.cli import main

main()
