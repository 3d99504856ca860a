import VOSCommands

VOSCommand.main()
