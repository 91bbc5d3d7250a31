package nixdaemon

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/pathinfo"
)

func (c *conn) buildOptions() BuildOptions {
	s := c.settings
	return BuildOptions{MaxJobs: int(s.maxBuildJobs), Cores: int(s.buildCores), Timeout: s.buildTimeout,
		MaxSilentTime: s.maxSilentTime, KeepGoing: s.keepGoing}
}

// targets reads BuildPaths' targets and, if withMode, the build mode,
// then opens the stderr channel and parses the targets.
func (c *conn) targets(withMode bool) ([]workerproto.DerivedPath, uint64, error) {
	raw := c.r.Strings("derived paths", 1<<16)
	mode := uint64(workerproto.BuildNormal)
	if withMode {
		mode = c.r.Uint64("build mode")
	}
	if err := c.args(); err != nil {
		return nil, 0, err
	}
	c.start()
	targets, err := parseTargets(raw)
	return targets, mode, err
}

func parseTargets(raw []string) ([]workerproto.DerivedPath, error) {
	out := make([]workerproto.DerivedPath, 0, len(raw))
	for _, s := range raw {
		d, err := workerproto.ParseDerivedPath(s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (c *conn) buildPaths() error {
	targets, mode, err := c.targets(c.minor() >= 15)
	if err != nil {
		return err
	}
	results, err := c.build(targets, mode)
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range results {
		if !r.Status.Success() {
			failed = append(failed, r.ErrorMsg)
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	c.stop(nil)
	c.w.Uint64(1)
	return nil
}

func (c *conn) buildPathsWithResults() error {
	targets, mode, err := c.targets(true)
	if err != nil {
		return err
	}
	results, err := c.build(targets, mode)
	if err != nil {
		return err
	}
	c.stop(nil)
	c.w.Uint64(uint64(len(results)))
	for _, r := range results {
		c.w.WriteBuildResult(r)
	}
	return nil
}

// buildReport turns a Builder's events into the client's activities and
// remembers how each derivation ended.
type buildReport struct {
	c     *conn
	mu    sync.Mutex
	acts  map[string]*activity
	logs  map[string]*logLines
	ended map[string]buildEnd
}

type buildEnd struct {
	err      error
	timedOut bool
	at       time.Time
}

func (c *conn) newBuildReport() *buildReport {
	return &buildReport{c: c, acts: map[string]*activity{}, logs: map[string]*logLines{}, ended: map[string]buildEnd{}}
}

func (b *buildReport) Started(drvPath string) io.Writer {
	act := b.c.startActivity(workerproto.LvlInfo, workerproto.ActBuild, fmt.Sprintf("building '%s'", drvPath),
		[]workerproto.Field{workerproto.TextField(drvPath), workerproto.TextField(""), workerproto.IntField(1), workerproto.IntField(1)})
	l := &logLines{act: act}
	b.mu.Lock()
	b.acts[drvPath], b.logs[drvPath] = act, l
	b.mu.Unlock()
	return l
}

func (b *buildReport) Finished(drvPath string, err error, timedOut bool) {
	b.mu.Lock()
	act, l := b.acts[drvPath], b.logs[drvPath]
	b.ended[drvPath] = buildEnd{err: err, timedOut: timedOut, at: time.Now()}
	b.mu.Unlock()
	if l != nil {
		l.flush()
	}
	if act != nil {
		act.stop()
	}
}

func (b *buildReport) end(drvPath string) (buildEnd, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.ended[drvPath]
	return e, ok
}

// logLines sends a build's log to the client a line at a time, as Nix's
// resBuildLogLine results.
type logLines struct {
	mu      sync.Mutex
	act     *activity
	partial []byte
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data := append(l.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		l.act.result(workerproto.ResBuildLogLine, []workerproto.Field{workerproto.TextField(string(data[:i]))})
		data = data[i+1:]
	}
	l.partial = append(l.partial[:0], data...)
	return len(p), nil
}

func (l *logLines) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.act.result(workerproto.ResBuildLogLine, []workerproto.Field{workerproto.TextField(string(l.partial))})
		l.partial = nil
	}
}

// outputsValid says which of a derivation's wanted outputs are valid.
func (c *conn) missingOutputs(drv *derivation.Derivation, wanted []string) ([]string, error) {
	var missing []string
	for _, name := range wanted {
		o, ok := drv.Outputs[name]
		if !ok {
			return nil, fmt.Errorf("derivation has no output '%s'", name)
		}
		sp, err := parsePath(o.Path)
		if err != nil {
			return nil, err
		}
		info, err := c.lookup(sp)
		if err != nil {
			return nil, err
		}
		if info == nil {
			missing = append(missing, name)
		}
	}
	return missing, nil
}

func wantedOutputs(t workerproto.DerivedPath, drv *derivation.Derivation) []string {
	if !t.All && len(t.Outputs) > 0 {
		return t.Outputs
	}
	names := make([]string, 0, len(drv.Outputs))
	for n := range drv.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// build realises targets: store paths by substitution, derivation
// outputs by building (what is valid already is left alone).
func (c *conn) build(targets []workerproto.DerivedPath, mode uint64) ([]workerproto.BuildResult, error) {
	if mode == workerproto.BuildRepair && !c.trusted {
		return nil, errors.New("repairing is not allowed because you are not in 'trusted-users'")
	}
	if mode != workerproto.BuildNormal {
		return nil, fmt.Errorf("build mode %d (repair or check) is not supported: tvix store paths are immutable", mode)
	}
	results := make([]workerproto.BuildResult, len(targets))
	drvs := make([]*derivation.Derivation, len(targets))
	var toBuild []string
	queued := map[string]bool{}
	for i, t := range targets {
		results[i].Path = t
		sp, err := parsePath(t.Path)
		if err != nil {
			return nil, err
		}
		if !t.Built {
			was, err := c.lookup(sp)
			if err != nil {
				return nil, err
			}
			info, err := c.substitute(sp)
			switch {
			case err != nil:
				results[i].Status, results[i].ErrorMsg = workerproto.MiscFailure, err.Error()
			case info == nil:
				results[i].Status, results[i].ErrorMsg = workerproto.NoSubstituters,
					fmt.Sprintf("path '%s' does not exist and cannot be created", sp)
			case was != nil:
				results[i].Status = workerproto.AlreadyValid
			default:
				results[i].Status = workerproto.Substituted
			}
			continue
		}
		drv, err := c.readDerivation(sp)
		if err != nil {
			results[i].Status, results[i].ErrorMsg = workerproto.MiscFailure, err.Error()
			continue
		}
		drvs[i] = drv
		missing, err := c.missingOutputs(drv, wantedOutputs(t, drv))
		if err != nil {
			results[i].Status, results[i].ErrorMsg = workerproto.MiscFailure, fmt.Sprintf("%s: %v", sp, err)
			continue
		}
		if len(missing) == 0 {
			results[i].Status = workerproto.AlreadyValid
			continue
		}
		results[i].Status = workerproto.Built
		if !queued[t.Path] {
			queued[t.Path] = true
			toBuild = append(toBuild, t.Path)
		}
	}
	report := c.newBuildReport()
	start := time.Now()
	var buildErr error
	if len(toBuild) > 0 {
		if c.srv.Store.Builder == nil {
			return nil, errors.New("this tvix daemon does not build (it was started without a builder)")
		}
		buildErr = c.srv.Store.Builder.Realise(c.ctx, toBuild, c.buildOptions(), report)
		if c.ctx.Err() != nil {
			return nil, c.ctx.Err()
		}
	}
	for i, t := range targets {
		if !t.Built || drvs[i] == nil {
			continue
		}
		if results[i].Status == workerproto.Built {
			results[i].StartTime, results[i].StopTime = uint64(start.Unix()), uint64(time.Now().Unix())
			end, ended := report.end(t.Path)
			switch {
			case ended && end.err != nil && end.timedOut:
				results[i].Status, results[i].ErrorMsg = workerproto.TimedOut, fmt.Sprintf("build of '%s' timed out: %v", t.Path, end.err)
			case ended && end.err != nil:
				results[i].Status, results[i].ErrorMsg = workerproto.PermanentFailure, fmt.Sprintf("build of '%s' failed: %v", t.Path, end.err)
			default:
				// Not built here: present after all, or a dependency failed.
				missing, err := c.missingOutputs(drvs[i], wantedOutputs(t, drvs[i]))
				switch {
				case err != nil:
					results[i].Status, results[i].ErrorMsg = workerproto.MiscFailure, err.Error()
				case len(missing) > 0 && buildErr != nil:
					results[i].Status, results[i].ErrorMsg = workerproto.DependencyFailed, fmt.Sprintf("build of '%s': %v", t.Path, buildErr)
				case len(missing) > 0:
					results[i].Status, results[i].ErrorMsg = workerproto.MiscFailure, fmt.Sprintf("build of '%s' left outputs %s missing", t.Path, strings.Join(missing, ", "))
				case ended:
					results[i].TimesBuilt = 1
				}
			}
		}
		if results[i].Status.Success() {
			results[i].BuiltOutputs = c.realisations(t.Path, drvs[i], wantedOutputs(t, drvs[i]))
		}
	}
	return results, nil
}

// realisations names the built outputs as Nix's BuildResult does, by the
// derivation's masked modulo hash (Nix's staticOutputHashes).
func (c *conn) realisations(drvPath string, drv *derivation.Derivation, outputs []string) []workerproto.Realisation {
	h, err := c.staticOutputHash(drv)
	if err != nil {
		c.log.Debug("output hash", "drv", drvPath, "err", err)
		return nil
	}
	out := make([]workerproto.Realisation, 0, len(outputs))
	for _, name := range outputs {
		if o, ok := drv.Outputs[name]; ok {
			out = append(out, workerproto.Realisation{ID: "sha256:" + h + "!" + name, OutPath: o.Path})
		}
	}
	return out
}

func (c *conn) staticOutputHash(drv *derivation.Derivation) (string, error) {
	lookup := derivation.NewModuloCache(func(p string) ([]byte, error) {
		sp, err := parsePath(p)
		if err != nil {
			return nil, err
		}
		info, err := c.require(sp)
		if err != nil {
			return nil, err
		}
		d, err := pathinfo.ReadDerivation(c.ctx, c.srv.Store.Blobs, info)
		if err != nil {
			return nil, err
		}
		return d.ATerm(), nil
	})
	masked := drv
	if !drv.IsFixedOutput() {
		masked = drv.Clone()
		for name, o := range masked.Outputs {
			o.Path = ""
			masked.Outputs[name] = o
			if _, ok := masked.Env[name]; ok {
				masked.Env[name] = ""
			}
		}
	}
	h, err := masked.HashDerivationModulo(lookup)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h[:]), nil
}

func (c *conn) buildDerivation() error {
	drvPath := c.r.Path("derivation path")
	drv, err := c.r.ReadBasicDerivation()
	mode := c.r.Uint64("build mode")
	if aerr := c.args(); aerr != nil {
		return aerr
	}
	c.start()
	if err != nil {
		return err
	}
	sp, err := parsePath(drvPath)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(sp.Name, ".drv") {
		return fmt.Errorf("path '%s' is not a derivation", sp)
	}
	if !drv.IsFixedOutput() && !c.trusted {
		return errors.New("you are not privileged to build input-addressed derivations")
	}
	if mode != workerproto.BuildNormal {
		return fmt.Errorf("build mode %d (repair or check) is not supported: tvix store paths are immutable", mode)
	}
	res := workerproto.BuildResult{Path: workerproto.DerivedPath{Path: drvPath, Built: true, All: true}}
	wanted := wantedOutputs(res.Path, drv)
	missing, err := c.missingOutputs(drv, wanted)
	if err != nil {
		return err
	}
	start := time.Now()
	if len(missing) == 0 {
		res.Status = workerproto.AlreadyValid
	} else if c.srv.Store.Builder == nil {
		return errors.New("this tvix daemon does not build (it was started without a builder)")
	} else {
		report := c.newBuildReport()
		berr := c.srv.Store.Builder.BuildDerivation(c.ctx, drvPath, drv, c.buildOptions(), report)
		if c.ctx.Err() != nil {
			return c.ctx.Err()
		}
		end, _ := report.end(drvPath)
		switch {
		case berr == nil:
			res.Status, res.TimesBuilt = workerproto.Built, 1
		case end.timedOut:
			res.Status, res.ErrorMsg = workerproto.TimedOut, berr.Error()
		default:
			res.Status, res.ErrorMsg = workerproto.PermanentFailure, berr.Error()
		}
	}
	res.StartTime, res.StopTime = uint64(start.Unix()), uint64(time.Now().Unix())
	if res.Status.Success() {
		for _, name := range wanted {
			// The id needs the input derivations, which a remote builder
			// never sees; the client names outputs by path anyway.
			res.BuiltOutputs = append(res.BuiltOutputs, workerproto.Realisation{ID: "sha256:" + strings.Repeat("0", 64) + "!" + name, OutPath: drv.Outputs[name].Path})
		}
	}
	c.stop(nil)
	c.w.Uint64(uint64(res.Status))
	c.w.String(res.ErrorMsg)
	if c.minor() >= 29 {
		c.w.Uint64(res.TimesBuilt)
		c.w.Bool(res.IsNonDeterministic)
		c.w.Uint64(res.StartTime)
		c.w.Uint64(res.StopTime)
	}
	if c.minor() >= 28 {
		c.w.WriteBuildOutputs(res.BuiltOutputs)
	}
	return nil
}

func (c *conn) queryMissing() error {
	targets, _, err := c.targets(false)
	if err != nil {
		return err
	}
	m := &missingWalk{c: c, seen: map[string]bool{}, build: map[string]bool{}, subst: map[string]bool{}, unknown: map[string]bool{}}
	for _, t := range targets {
		if err := m.visit(t); err != nil {
			return err
		}
	}
	c.stop(nil)
	for _, set := range []map[string]bool{m.build, m.subst, m.unknown} {
		var ss []string
		for p := range set {
			ss = append(ss, p)
		}
		c.w.StringSet(ss)
	}
	c.w.Uint64(m.downloadSize)
	c.w.Uint64(m.narSize)
	return nil
}

// missingWalk is QueryMissing: what building targets would build,
// substitute, or not know how to make.
type missingWalk struct {
	c                     *conn
	seen                  map[string]bool
	build, subst, unknown map[string]bool
	downloadSize, narSize uint64
}

func (m *missingWalk) visit(t workerproto.DerivedPath) error {
	key := t.String()
	if m.seen[key] {
		return nil
	}
	m.seen[key] = true
	sp, err := parsePath(t.Path)
	if err != nil {
		return err
	}
	if !t.Built {
		return m.opaque(sp)
	}
	info, err := m.c.lookup(sp)
	if err != nil {
		return err
	}
	if info == nil {
		m.unknown[t.Path] = true
		return nil
	}
	drv, err := pathinfo.ReadDerivation(m.c.ctx, m.c.srv.Store.Blobs, info)
	if err != nil {
		return err
	}
	missing, err := m.c.missingOutputs(drv, wantedOutputs(t, drv))
	if err != nil || len(missing) == 0 {
		return err
	}
	var outPaths []storepath.StorePath
	for _, name := range missing {
		op, err := parsePath(drv.Outputs[name].Path)
		if err != nil {
			return err
		}
		outPaths = append(outPaths, op)
	}
	subs, err := m.c.substitutable(outPaths)
	if err != nil {
		return err
	}
	if len(subs) == len(outPaths) {
		for op, ni := range subs {
			m.subst[op.String()] = true
			m.narSize += ni.NarSize
			m.downloadSize += downloadSize(ni)
		}
		return nil
	}
	m.build[t.Path] = true
	for in, outs := range drv.InputDerivations {
		if err := m.visit(workerproto.DerivedPath{Path: in, Built: true, Outputs: outs}); err != nil {
			return err
		}
	}
	for _, src := range drv.InputSources {
		if err := m.visit(workerproto.DerivedPath{Path: src}); err != nil {
			return err
		}
	}
	return nil
}

func (m *missingWalk) opaque(sp storepath.StorePath) error {
	info, err := m.c.lookup(sp)
	if err != nil || info != nil {
		return err
	}
	subs, err := m.c.substitutable([]storepath.StorePath{sp})
	if err != nil {
		return err
	}
	if ni := subs[sp]; ni != nil {
		m.subst[sp.String()] = true
		m.narSize += ni.NarSize
		m.downloadSize += downloadSize(ni)
		return nil
	}
	m.unknown[sp.String()] = true
	return nil
}

func (c *conn) addBuildLog() error {
	c.r.Path("derivation path")
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	if err := c.r.Framed().Drain(); err != nil {
		return errFatal{err}
	}
	if !c.trusted {
		return errors.New("you are not privileged to add logs")
	}
	return errors.New("the tvix daemon keeps no build logs sent by clients (AddBuildLog is not supported)")
}

func (c *conn) registerDrvOutput() error {
	if c.minor() < 31 {
		c.r.String("output id")
		c.r.Path("output path")
	} else {
		c.r.String("realisation")
	}
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	return errors.New("content-addressed derivations (realisations) are not supported by the tvix daemon")
}

func (c *conn) querySubstitutablePathInfo() error {
	sp, err := c.pathArg("path")
	if err != nil {
		return err
	}
	subs, err := c.substitutable([]storepath.StorePath{sp})
	if err != nil {
		return err
	}
	ni := subs[sp]
	c.stop(nil)
	if ni == nil {
		c.w.Uint64(0)
		return nil
	}
	pi := wireNarInfo(ni)
	c.w.Uint64(1)
	c.w.String(pi.Deriver)
	c.w.StringSet(pi.References)
	c.w.Uint64(downloadSize(ni))
	c.w.Uint64(pi.NarSize)
	return nil
}
