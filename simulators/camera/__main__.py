from simulators.camera.cli import main

main()
