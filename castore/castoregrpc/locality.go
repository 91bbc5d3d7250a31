package castoregrpc

// InProcess: every call crosses to another process.
func (*BlobClient) InProcess() bool { return false }

// InProcess: every call crosses to another process.
func (*DirectoryClient) InProcess() bool { return false }
