from tiercli.cli import main  # its first line takes the signals, before the heavy imports

main()
