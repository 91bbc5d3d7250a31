// Package workerproto is the framing of Nix's worker protocol, the one
// nix-daemon speaks on /nix/var/nix/daemon-socket/socket and over
// `nix-daemon --stdio`: little-endian uint64 integers, strings as a length
// and bytes padded with zeros to a multiple of 8, lists as a count and
// their items, "framed" streams as chunks each led by its length and ended
// by an empty one, and the stderr channel a daemon answers each operation
// with (log lines, activities, then the last message or an error).
//
// It is pure format: no store, no sockets. Everything read is bounded (a
// string's length, a list's count, and a budget for all that one request
// allocates), so a hostile peer gets an error, not a daemon out of memory.
package workerproto

import "fmt"

// The handshake: the client sends MagicClient, the daemon MagicServer and
// its version, the client its version.
const (
	MagicClient = 0x6e697863
	MagicServer = 0x6478696f
)

// Version is what Nix 2.8 speaks: protocol 1.34.
const Version = 1<<8 | 34

// Major and Minor split a protocol version.
func Major(v uint64) uint64 { return v & 0xff00 }
func Minor(v uint64) uint64 { return v & 0x00ff }

// Op is a worker operation.
type Op uint64

// The operations of protocol 1.34; the obsolete ones keep their numbers.
const (
	OpIsValidPath                 Op = 1
	OpHasSubstitutes              Op = 3
	OpQueryPathHash               Op = 4
	OpQueryReferences             Op = 5
	OpQueryReferrers              Op = 6
	OpAddToStore                  Op = 7
	OpAddTextToStore              Op = 8
	OpBuildPaths                  Op = 9
	OpEnsurePath                  Op = 10
	OpAddTempRoot                 Op = 11
	OpAddIndirectRoot             Op = 12
	OpSyncWithGC                  Op = 13
	OpFindRoots                   Op = 14
	OpExportPath                  Op = 16
	OpQueryDeriver                Op = 18
	OpSetOptions                  Op = 19
	OpCollectGarbage              Op = 20
	OpQuerySubstitutablePathInfo  Op = 21
	OpQueryDerivationOutputs      Op = 22
	OpQueryAllValidPaths          Op = 23
	OpQueryFailedPaths            Op = 24
	OpClearFailedPaths            Op = 25
	OpQueryPathInfo               Op = 26
	OpImportPaths                 Op = 27
	OpQueryDerivationOutputNames  Op = 28
	OpQueryPathFromHashPart       Op = 29
	OpQuerySubstitutablePathInfos Op = 30
	OpQueryValidPaths             Op = 31
	OpQuerySubstitutablePaths     Op = 32
	OpQueryValidDerivers          Op = 33
	OpOptimiseStore               Op = 34
	OpVerifyStore                 Op = 35
	OpBuildDerivation             Op = 36
	OpAddSignatures               Op = 37
	OpNarFromPath                 Op = 38
	OpAddToStoreNar               Op = 39
	OpQueryMissing                Op = 40
	OpQueryDerivationOutputMap    Op = 41
	OpRegisterDrvOutput           Op = 42
	OpQueryRealisation            Op = 43
	OpAddMultipleToStore          Op = 44
	OpAddBuildLog                 Op = 45
	OpBuildPathsWithResults       Op = 46
)

var opNames = map[Op]string{
	OpIsValidPath: "IsValidPath", OpHasSubstitutes: "HasSubstitutes", OpQueryPathHash: "QueryPathHash",
	OpQueryReferences: "QueryReferences", OpQueryReferrers: "QueryReferrers", OpAddToStore: "AddToStore",
	OpAddTextToStore: "AddTextToStore", OpBuildPaths: "BuildPaths", OpEnsurePath: "EnsurePath",
	OpAddTempRoot: "AddTempRoot", OpAddIndirectRoot: "AddIndirectRoot", OpSyncWithGC: "SyncWithGC",
	OpFindRoots: "FindRoots", OpExportPath: "ExportPath", OpQueryDeriver: "QueryDeriver",
	OpSetOptions: "SetOptions", OpCollectGarbage: "CollectGarbage",
	OpQuerySubstitutablePathInfo: "QuerySubstitutablePathInfo", OpQueryDerivationOutputs: "QueryDerivationOutputs",
	OpQueryAllValidPaths: "QueryAllValidPaths", OpQueryFailedPaths: "QueryFailedPaths",
	OpClearFailedPaths: "ClearFailedPaths", OpQueryPathInfo: "QueryPathInfo", OpImportPaths: "ImportPaths",
	OpQueryDerivationOutputNames: "QueryDerivationOutputNames", OpQueryPathFromHashPart: "QueryPathFromHashPart",
	OpQuerySubstitutablePathInfos: "QuerySubstitutablePathInfos", OpQueryValidPaths: "QueryValidPaths",
	OpQuerySubstitutablePaths: "QuerySubstitutablePaths", OpQueryValidDerivers: "QueryValidDerivers",
	OpOptimiseStore: "OptimiseStore", OpVerifyStore: "VerifyStore", OpBuildDerivation: "BuildDerivation",
	OpAddSignatures: "AddSignatures", OpNarFromPath: "NarFromPath", OpAddToStoreNar: "AddToStoreNar",
	OpQueryMissing: "QueryMissing", OpQueryDerivationOutputMap: "QueryDerivationOutputMap",
	OpRegisterDrvOutput: "RegisterDrvOutput", OpQueryRealisation: "QueryRealisation",
	OpAddMultipleToStore: "AddMultipleToStore", OpAddBuildLog: "AddBuildLog",
	OpBuildPathsWithResults: "BuildPathsWithResults",
}

// Known says whether o is an operation of protocol 1.34 (served or not).
func (o Op) Known() bool {
	_, ok := opNames[o]
	return ok
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("operation %d", uint64(o))
}

// Messages on the stderr channel, before an operation's reply.
const (
	StderrNext          = 0x6f6c6d67 // a log line
	StderrRead          = 0x64617461 // the daemon wants data (protocols < 1.23)
	StderrWrite         = 0x64617416 // data for the client's sink
	StderrLast          = 0x616c7473 // the reply follows
	StderrError         = 0x63787470 // the operation failed
	StderrStartActivity = 0x53545254
	StderrStopActivity  = 0x53544f50
	StderrResult        = 0x52534c54
)

// Verbosity levels, as Nix's.
const (
	LvlError     = 0
	LvlWarn      = 1
	LvlNotice    = 2
	LvlInfo      = 3
	LvlTalkative = 4
	LvlChatty    = 5
	LvlDebug     = 6
	LvlVomit     = 7
)

// Activity and result types the daemon reports (Nix's logging.hh).
const (
	ActCopyPath   = 100
	ActBuild      = 105
	ActSubstitute = 108

	ResBuildLogLine = 101
	ResProgress     = 105
)

// BuildMode of BuildPaths and BuildDerivation.
const (
	BuildNormal = 0
	BuildRepair = 1
	BuildCheck  = 2
)

// BuildStatus is Nix's BuildResult::Status.
type BuildStatus uint64

// The statuses; their numbers are the wire's.
const (
	Built BuildStatus = iota
	Substituted
	AlreadyValid
	PermanentFailure
	InputRejected
	OutputRejected
	TransientFailure
	CachedFailure
	TimedOut
	MiscFailure
	DependencyFailed
	LogLimitExceeded
	NotDeterministic
	ResolvesToAlreadyValid
	NoSubstituters
)

// Success is what Nix's BuildResult::success says.
func (s BuildStatus) Success() bool {
	return s == Built || s == Substituted || s == AlreadyValid || s == ResolvesToAlreadyValid
}

// GCAction is CollectGarbage's action.
type GCAction uint64

// The actions, as Nix's GCOptions.
const (
	GCReturnLive     GCAction = 0
	GCReturnDead     GCAction = 1
	GCDeleteDead     GCAction = 2
	GCDeleteSpecific GCAction = 3
)
