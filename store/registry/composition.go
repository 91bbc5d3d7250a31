package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// A composition file describes a store as a graph of named services, in
// the TOML of Tvix's store composition: tables blobservices,
// directoryservices and pathinfoservices, each entry with a type, one
// entry of each named "root", entries referring to others by name:
//
//	[blobservices.root]
//	type = "cache"          # near first, far on a miss, kept near
//	near = "local"
//	far = "s3"
//	[blobservices.local]
//	type = "url"
//	url = "pack+file:///var/cache/tvix/blobs"
//	[blobservices.s3]
//	type = "url"
//	url = "objectstore+s3://tvix/store?endpoint=http://10.0.0.1:9000"
//
// Types (see compositionTypes): url (any scheme of the registry), memory,
// grpc (url), objectstore (object_store_url, file:// or s3://), cache or
// combined (near, far); for path infos also lru (capacity), nix (a
// binary cache: base_url, public_keys, blob_service, directory_service)
// and signing (inner, keyfile: signs what is put).

// Composition is a parsed composition file, not yet opened.
type Composition struct {
	file    string
	entries [3]map[string]compEntry
}

type compEntry struct {
	Type             string   `toml:"type"`
	URL              string   `toml:"url"`
	ObjectStoreURL   string   `toml:"object_store_url"`
	Near             string   `toml:"near"`
	Far              string   `toml:"far"`
	Capacity         int      `toml:"capacity"`
	BaseURL          string   `toml:"base_url"`
	PublicKeys       []string `toml:"public_keys"`
	BlobService      string   `toml:"blob_service"`
	DirectoryService string   `toml:"directory_service"`
	Inner            string   `toml:"inner"`
	KeyFile          string   `toml:"keyfile"`
}

// compositionTables names each kind's table in the file.
var compositionTables = [3]string{Blob: "blobservices", Directory: "directoryservices", PathInfo: "pathinfoservices"}

// compositionTypes lists, per kind, each type's fields (besides type).
var compositionTypes = [3]map[string][]string{
	Blob: {
		"url": {"url"}, "memory": nil, "grpc": {"url"}, "objectstore": {"object_store_url"},
		"cache": {"near", "far"}, "combined": {"near", "far"},
	},
	Directory: {
		"url": {"url"}, "memory": nil, "grpc": {"url"},
		"cache": {"near", "far"}, "combined": {"near", "far"},
	},
	PathInfo: {
		"url": {"url"}, "memory": nil, "grpc": {"url"},
		"cache": {"near", "far"}, "combined": {"near", "far"},
		"lru":     {"capacity"},
		"nix":     {"base_url", "public_keys", "blob_service", "directory_service"},
		"signing": {"inner", "keyfile"},
	},
}

// ParseComposition reads and checks a composition file: known tables,
// types and fields, every reference naming an entry of the right kind,
// no cycles, a root of each kind. Errors name the entry
// (pathinfoservices.root) and the field.
func ParseComposition(file string) (*Composition, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	c, err := parseComposition(string(text))
	if err != nil {
		return nil, fmt.Errorf("store config %s: %w", file, err)
	}
	c.file = file
	return c, nil
}

func parseComposition(text string) (*Composition, error) {
	var raw struct {
		Blob      map[string]compEntry `toml:"blobservices"`
		Directory map[string]compEntry `toml:"directoryservices"`
		PathInfo  map[string]compEntry `toml:"pathinfoservices"`
	}
	md, err := toml.Decode(text, &raw)
	if err != nil {
		return nil, err
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		k := extra[0]
		if len(k) <= 2 {
			return nil, fmt.Errorf("unknown table or key %q (want blobservices, directoryservices, pathinfoservices)", k.String())
		}
		return nil, fmt.Errorf("%s.%s: unknown field %q", k[0], k[1], strings.Join(k[2:], "."))
	}
	c := &Composition{entries: [3]map[string]compEntry{raw.Blob, raw.Directory, raw.PathInfo}}
	for k := range c.entries {
		kind := Kind(k)
		table := compositionTables[kind]
		if _, ok := c.entries[kind]["root"]; !ok {
			return nil, fmt.Errorf("%s: no entry named root (the service the store uses)", table)
		}
		for _, name := range sortedKeys(c.entries[kind]) {
			e := c.entries[kind][name]
			fields, ok := compositionTypes[kind][e.Type]
			if !ok {
				return nil, fmt.Errorf("%s.%s: type %q unknown (want one of %s)", table, name, e.Type, strings.Join(sortedKeys(compositionTypes[kind]), ", "))
			}
			for _, key := range md.Keys() {
				if len(key) == 3 && key[0] == table && key[1] == name && key[2] != "type" && !slices.Contains(fields, key[2]) {
					return nil, fmt.Errorf("%s.%s: field %q does not belong to type %s (which has: %s)", table, name, key[2], e.Type, strings.Join(fields, ", "))
				}
			}
			for _, f := range fields {
				if f != "public_keys" && !md.IsDefined(table, name, f) {
					return nil, fmt.Errorf("%s.%s: type %s needs %s", table, name, e.Type, f)
				}
			}
			for _, ref := range c.refs(kind, e) {
				if _, ok := c.entries[ref.kind][ref.name]; !ok {
					return nil, fmt.Errorf("%s.%s: %s = %q: no %s entry of that name (have: %s)", table, name, ref.field, ref.name,
						compositionTables[ref.kind], strings.Join(sortedKeys(c.entries[ref.kind]), ", "))
				}
			}
		}
	}
	for k := range c.entries {
		for _, name := range sortedKeys(c.entries[k]) {
			if err := c.checkCycle(Kind(k), name, nil); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

type compRef struct {
	field string
	kind  Kind
	name  string
}

// refs are the entries e refers to.
func (c *Composition) refs(kind Kind, e compEntry) []compRef {
	switch e.Type {
	case "cache", "combined":
		return []compRef{{"near", kind, e.Near}, {"far", kind, e.Far}}
	case "signing":
		return []compRef{{"inner", kind, e.Inner}}
	case "nix":
		return []compRef{{"blob_service", Blob, e.BlobService}, {"directory_service", Directory, e.DirectoryService}}
	}
	return nil
}

func (c *Composition) checkCycle(kind Kind, name string, path []string) error {
	id := compositionTables[kind] + "." + name
	if slices.Contains(path, id) {
		return fmt.Errorf("%s: refers to itself: %s", path[0], strings.Join(append(path, id), " -> "))
	}
	for _, r := range c.refs(kind, c.entries[kind][name]) {
		if err := c.checkCycle(r.kind, r.name, append(path, id)); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// OpenComposition opens the services a parsed composition file describes,
// each entry once however often it is referred to, then layers the
// substituters (if any) behind the path-info root as Open does.
func (r *Registry) OpenComposition(ctx context.Context, c *Composition, sub Substitution, substituters ...string) (*Services, error) {
	o := r.NewOpener(sub)
	s := &Services{closers: []io.Closer{o}}
	b := &compBuilder{c: c, o: o, s: s, built: [3]map[string]any{{}, {}, {}}}
	fail := func(err error) (*Services, error) {
		s.Close()
		if c.file != "" {
			err = fmt.Errorf("store config %s: %w", c.file, err)
		}
		return nil, err
	}
	blobs, err := b.build(ctx, Blob, "root")
	if err != nil {
		return fail(err)
	}
	dirs, err := b.build(ctx, Directory, "root")
	if err != nil {
		return fail(err)
	}
	s.Blobs, s.Directories = blobs.(castore.BlobService), dirs.(castore.DirectoryService)
	// A binary cache named by a url entry fills the roots.
	o.Blobs, o.Dirs = s.Blobs, s.Directories
	infos, err := b.build(ctx, PathInfo, "root")
	if err != nil {
		return fail(err)
	}
	s.PathInfos = infos.(pathinfo.Service)
	if err := s.withSubstituters(ctx, o, substituters); err != nil {
		return fail(err)
	}
	return s, nil
}

type compBuilder struct {
	c     *Composition
	o     *Opener
	s     *Services
	built [3]map[string]any
}

// build opens entry name of kind. Only services opened from URLs are
// closed (by Services.Close); the layers above them close nothing of
// their own and would close what they wrap twice.
func (b *compBuilder) build(ctx context.Context, kind Kind, name string) (any, error) {
	if svc, ok := b.built[kind][name]; ok {
		return svc, nil
	}
	e := b.c.entries[kind][name]
	svc, err := b.open(ctx, kind, e)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", compositionTables[kind], name, err)
	}
	b.built[kind][name] = svc
	return svc, nil
}

func (b *compBuilder) leaf(ctx context.Context, kind Kind, raw string) (any, error) {
	var svc io.Closer
	var err error
	switch kind {
	case Blob:
		svc, err = b.o.BlobService(ctx, raw)
	case Directory:
		svc, err = b.o.DirectoryService(ctx, raw)
	default:
		svc, err = b.o.PathInfoService(ctx, raw)
	}
	if err != nil {
		return nil, err
	}
	b.s.closers = append(b.s.closers, svc)
	return svc, nil
}

func (b *compBuilder) open(ctx context.Context, kind Kind, e compEntry) (any, error) {
	switch e.Type {
	case "url", "grpc":
		if e.Type == "grpc" && !strings.HasPrefix(e.URL, "grpc+") {
			return nil, fmt.Errorf("url %q: a grpc entry wants grpc+unix://, grpc+http:// or grpc+https://", e.URL)
		}
		return b.leaf(ctx, kind, e.URL)
	case "memory":
		return b.leaf(ctx, kind, "memory://")
	case "objectstore":
		raw, err := objectStoreURL(e.ObjectStoreURL)
		if err != nil {
			return nil, err
		}
		return b.leaf(ctx, kind, raw)
	case "cache", "combined":
		near, err := b.build(ctx, kind, e.Near)
		if err != nil {
			return nil, err
		}
		far, err := b.build(ctx, kind, e.Far)
		if err != nil {
			return nil, err
		}
		switch kind {
		case Blob:
			return combined.Blobs{Near: near.(castore.BlobService), Far: far.(castore.BlobService)}, nil
		case Directory:
			return combined.Directories{Near: near.(castore.DirectoryService), Far: far.(castore.DirectoryService)}, nil
		}
		return &nixcache.Composite{Local: near.(pathinfo.Service), Substituters: []pathinfo.Service{far.(pathinfo.Service)}}, nil
	case "lru":
		if e.Capacity < 1 {
			return nil, fmt.Errorf("capacity %d: want at least 1", e.Capacity)
		}
		return newLRUPathInfos(e.Capacity), nil
	case "nix":
		blobs, err := b.build(ctx, Blob, e.BlobService)
		if err != nil {
			return nil, err
		}
		dirs, err := b.build(ctx, Directory, e.DirectoryService)
		if err != nil {
			return nil, err
		}
		u, err := url.Parse(e.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
			return nil, fmt.Errorf("base_url %q: want an http://, https:// or file:// binary cache", e.BaseURL)
		}
		u.Scheme = "nix+" + u.Scheme
		q := u.Query()
		if len(e.PublicKeys) > 0 {
			q.Set("trusted-public-keys", strings.Join(e.PublicKeys, " "))
		} else if !b.o.Substitution.AllowUnsigned {
			return nil, errors.New("no public_keys: a binary cache's narinfos must be signed (or pass --allow-unsigned-substitutes)")
		} else {
			q.Set("allow-unsigned", "true")
		}
		u.RawQuery = q.Encode()
		svc, err := nixcache.Open(u, blobs.(castore.BlobService), dirs.(castore.DirectoryService))
		if err != nil {
			return nil, err
		}
		b.s.closers = append(b.s.closers, svc)
		return svc, nil
	case "signing":
		inner, err := b.build(ctx, PathInfo, e.Inner)
		if err != nil {
			return nil, err
		}
		raw, err := os.ReadFile(e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("keyfile: %w", err)
		}
		key, err := narinfo.ParseSecretKey(strings.TrimSpace(string(raw)))
		if err != nil {
			return nil, fmt.Errorf("keyfile %s: %w", e.KeyFile, err)
		}
		return &signingPathInfos{Service: inner.(pathinfo.Service), key: key}, nil
	}
	return nil, fmt.Errorf("type %q unknown", e.Type) // ParseComposition refused it already
}

// objectStoreURL maps Tvix's object_store_url onto a scheme of ours.
func objectStoreURL(raw string) (string, error) {
	switch {
	case strings.HasPrefix(raw, "file:///"):
		return "objectstore+" + raw, nil
	case strings.HasPrefix(raw, "s3://"):
		return "objectstore+" + raw, nil
	}
	return "", fmt.Errorf("object_store_url %q: want file:///path or s3://BUCKET/PREFIX?endpoint=…", raw)
}
