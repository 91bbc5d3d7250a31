package dirstore

// InProcess: both stores answer from this process.
func (*Memory) InProcess() bool { return true }

// InProcess: both stores answer from this process.
func (*Bolt) InProcess() bool { return true }
