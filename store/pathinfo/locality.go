package pathinfo

// InProcess: answered from this process.
func (*Memory) InProcess() bool { return true }

// InProcess: answered from this process.
func (*Bolt) InProcess() bool { return true }

// InProcess: every call crosses to another process.
func (*Client) InProcess() bool { return false }
