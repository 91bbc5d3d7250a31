package nixdaemon

import (
	"strconv"
	"time"

	"github.com/tvix-go/tvix/nix/workerproto"
)

// settings are what a client sent with SetOptions, as far as they matter
// here.
type settings struct {
	verbosity      uint64
	keepGoing      bool
	maxBuildJobs   uint64
	maxSilentTime  time.Duration
	buildTimeout   time.Duration
	buildCores     uint64
	useSubstitutes bool
}

func defaultSettings() settings {
	return settings{verbosity: workerproto.LvlInfo, useSubstitutes: true, maxBuildJobs: 1}
}

// setOptions reads the client's settings. Of the overrides, an untrusted
// client may set only those Nix lets it (the build timeout), and no client
// the substituters: the daemon's are fixed when it starts.
func (c *conn) setOptions() error {
	var s settings
	c.r.Bool("keep failed")
	s.keepGoing = c.r.Bool("keep going")
	c.r.Bool("try fallback")
	s.verbosity = c.r.Uint64("verbosity")
	s.maxBuildJobs = c.r.Uint64("max build jobs")
	s.maxSilentTime = time.Duration(c.r.Uint64("max silent time")) * time.Second
	c.r.Uint64("use build hook")
	c.r.Uint64("verbose build")
	c.r.Uint64("log type")
	c.r.Uint64("print build trace")
	s.buildCores = c.r.Uint64("build cores")
	s.useSubstitutes = c.r.Bool("use substitutes")
	var overrides map[string]string
	if c.minor() >= 12 {
		overrides = c.r.StringMap("overrides")
	}
	if err := c.args(); err != nil {
		return err
	}
	c.start()
	for name, value := range overrides {
		switch name {
		case "timeout", "build-timeout":
			if n, err := strconv.ParseUint(value, 10, 32); err == nil {
				s.buildTimeout = time.Duration(n) * time.Second
			}
		case "max-silent-time":
			if !c.trusted {
				break
			}
			if n, err := strconv.ParseUint(value, 10, 32); err == nil {
				s.maxSilentTime = time.Duration(n) * time.Second
			}
		}
	}
	c.settings = s
	c.stop(nil)
	return nil
}
