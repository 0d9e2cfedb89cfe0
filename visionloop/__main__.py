from visionloop.cli import main

main()
