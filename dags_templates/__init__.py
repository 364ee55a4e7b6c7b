"""Templates of the files the controller renders into the Composer bucket."""
