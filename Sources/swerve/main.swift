print("swerve")
