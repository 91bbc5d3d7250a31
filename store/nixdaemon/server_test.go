package nixdaemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/nar/nartest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/narcastore"
)

var (
	root   = Peer{UID: 0, GID: 0}
	nobody = Peer{UID: 65534, GID: 65534}
)

// inputAddressed is a made-up input-addressed path for contents.
func inputAddressed(t testing.TB, name, contents string) (workerproto.PathInfo, []byte) {
	b := makeNAR(t, contents)
	sum := bytes.Repeat([]byte{byte(len(contents))}, 20)
	copy(sum, name)
	var sp storepath.StorePath
	copy(sp.Digest[:], sum)
	sp.Name = name
	return workerproto.PathInfo{Path: sp.String(), NarHash: narHash(b), NarSize: uint64(len(b))}, b
}

// fixedFlat is the content-addressed path of a flat file, as
// builtins.fetchurl makes them.
func fixedFlat(t testing.TB, name, contents string) (workerproto.PathInfo, []byte) {
	b := makeNAR(t, contents)
	h := nixhash.Sum(nixhash.SHA256, []byte(contents))
	sp, err := storepath.MakeFixedOutput(name, false, "sha256", h.Digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	return workerproto.PathInfo{Path: sp.String(), NarHash: narHash(b), NarSize: uint64(len(b)), CA: "fixed:sha256:" + h.Nix32()}, b
}

func TestHandshakeRefusesOtherMagic(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	srv := &Server{Store: newStore()}
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), a, a, root); a.Close() }()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], 0x12345678)
	b.Write(buf[:])
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("ServeConn with a wrong magic: %v", err)
	}
}

func TestAddAndQueryPath(t *testing.T) {
	c, _ := connect(t, newStore(), root)
	pi, narBytes := inputAddressed(t, "hello", "hello world\n")
	if c.isValid(pi.Path) {
		t.Fatal("path valid before it was added")
	}
	if err := c.addNAR(pi, narBytes, true); err != nil {
		t.Fatalf("AddToStoreNar: %v", err)
	}
	if !c.isValid(pi.Path) {
		t.Fatal("path not valid after AddToStoreNar")
	}
	if err := c.op(workerproto.OpQueryPathInfo, func(w *workerproto.Writer) { w.String(pi.Path) }, nil); err != nil {
		t.Fatal(err)
	}
	if !c.r.Bool("valid") {
		t.Fatal("QueryPathInfo: not valid")
	}
	got := c.r.ReadPathInfo(false)
	if got.NarHash != pi.NarHash || got.NarSize != pi.NarSize || len(got.References) != 0 {
		t.Fatalf("QueryPathInfo: %+v, want hash %s size %d", got, pi.NarHash, pi.NarSize)
	}
	// The NAR comes back as it went in.
	if err := c.op(workerproto.OpNarFromPath, func(w *workerproto.Writer) { w.String(pi.Path) }, nil); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(narBytes))
	if _, err := c.r.Buffered().Read(back[:0]); err != nil {
		t.Fatal(err)
	}
	if _, err := ioReadFull(c, back); err != nil || !bytes.Equal(back, narBytes) {
		t.Fatalf("NarFromPath: %v, %d bytes differ", err, len(back))
	}
	// The hash part finds it; a path with the same digest and another
	// name is not it.
	if err := c.op(workerproto.OpQueryPathFromHashPart, func(w *workerproto.Writer) { w.String(pi.Path[11:43]) }, nil); err != nil {
		t.Fatal(err)
	}
	if p := c.r.String("path"); p != pi.Path {
		t.Fatalf("QueryPathFromHashPart: %q", p)
	}
	if c.isValid(pi.Path[:44] + "other") {
		t.Fatal("a path with the same hash and another name is valid")
	}
}

func ioReadFull(c *testClient, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.r.Buffered().Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestBadNARRecordsNothingAndTheConnectionGoesOn(t *testing.T) {
	c, d := connect(t, newStore(), root)
	pi, narBytes := inputAddressed(t, "hello", "hello world\n")
	for name, tc := range map[string]struct {
		pi  workerproto.PathInfo
		nar []byte
	}{
		"wrong hash":     {workerproto.PathInfo{Path: pi.Path, NarHash: strings.Repeat("0", 64), NarSize: pi.NarSize}, narBytes},
		"wrong size":     {workerproto.PathInfo{Path: pi.Path, NarHash: pi.NarHash, NarSize: pi.NarSize + 8}, narBytes},
		"truncated NAR":  {pi, narBytes[:len(narBytes)-8]},
		"trailing bytes": {pi, append(append([]byte(nil), narBytes...), 0, 0, 0, 0, 0, 0, 0, 0)},
		"not a NAR":      {pi, []byte("this is not a NAR at all")},
		"bad path":       {workerproto.PathInfo{Path: "/nix/store/not-a-path", NarHash: pi.NarHash, NarSize: pi.NarSize}, narBytes},
		"missing reference": {workerproto.PathInfo{Path: pi.Path, NarHash: pi.NarHash, NarSize: pi.NarSize,
			References: []string{"/nix/store/" + strings.Repeat("a", 32) + "-absent"}}, narBytes},
	} {
		err := c.addNAR(tc.pi, tc.nar, true)
		if !isDaemonError(err) {
			t.Fatalf("%s: AddToStoreNar gave %v, want the daemon's error", name, err)
		}
		t.Logf("%s: %v", name, err)
		if c.isValid(pi.Path) {
			t.Fatalf("%s: the path was recorded", name)
		}
	}
	if closed, err := d.closed(); closed {
		t.Fatalf("the daemon closed the connection: %v", err)
	}
}

func TestUntrustedClientsNeedSignaturesOrContentAddresses(t *testing.T) {
	st := newStore()
	sk, pk, err := narinfo.GenerateKey("test-key", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st.TrustedKeys = []narinfo.PublicKey{pk}
	c, _ := connect(t, st, nobody)

	unsigned, narBytes := inputAddressed(t, "unsigned", "one")
	// Asking not to check signatures, or claiming to be ultimate, does
	// not help an untrusted client.
	unsigned.Ultimate = true
	err = c.addNAR(unsigned, narBytes, true)
	if !isDaemonError(err) || !strings.Contains(err.Error(), "lacks a signature by a trusted key") {
		t.Fatalf("unsigned input-addressed path from an untrusted client: %v", err)
	}
	signed, narBytes := inputAddressed(t, "signed", "two")
	ni, err := narInfoFromWire(signed)
	if err != nil {
		t.Fatal(err)
	}
	ni.Sign(sk)
	signed.Sigs = []string{ni.Signatures[0].String()}
	if err := c.addNAR(signed, narBytes, false); err != nil {
		t.Fatalf("signed path: %v", err)
	}
	ca, narBytes := fixedFlat(t, "fetched", "three")
	if err := c.addNAR(ca, narBytes, false); err != nil {
		t.Fatalf("content-addressed path: %v", err)
	}
	// A content address the contents do not match.
	lie, _ := fixedFlat(t, "lie", "four")
	other := makeNAR(t, "five")
	lie.NarHash, lie.NarSize = narHash(other), uint64(len(other))
	if err := c.addNAR(lie, other, false); !isDaemonError(err) || !strings.Contains(err.Error(), "content address") {
		t.Fatalf("content-addressed path with other contents: %v", err)
	}
	// Only trusted clients may add signatures.
	err = c.op(workerproto.OpAddSignatures, func(w *workerproto.Writer) {
		w.String(ca.Path)
		w.Strings([]string{ni.Signatures[0].String()})
	}, nil)
	if !isDaemonError(err) || !strings.Contains(err.Error(), "not privileged") {
		t.Fatalf("AddSignatures from an untrusted client: %v", err)
	}
	for _, p := range []string{signed.Path, ca.Path} {
		if !c.isValid(p) {
			t.Fatalf("%s not valid", p)
		}
	}
	for _, p := range []string{unsigned.Path, lie.Path} {
		if c.isValid(p) {
			t.Fatalf("%s was recorded", p)
		}
	}
}

func TestAddMultipleToStoreInOrder(t *testing.T) {
	c, _ := connect(t, newStore(), root)
	dep, depNAR := inputAddressed(t, "dep", "dependency")
	top, topNAR := inputAddressed(t, "top", "refers to "+dep.Path)
	top.References = []string{dep.Path}
	var stream bytes.Buffer
	w := workerproto.NewWriter(&stream)
	w.Uint64(2)
	w.WritePathInfo(dep, true)
	w.Write(depNAR)
	w.WritePathInfo(top, true)
	w.Write(topNAR)
	w.Flush()
	err := c.op(workerproto.OpAddMultipleToStore, func(w *workerproto.Writer) {
		w.Bool(false)
		w.Bool(true)
	}, stream.Bytes())
	if err != nil {
		t.Fatalf("AddMultipleToStore: %v", err)
	}
	if err := c.op(workerproto.OpQueryReferrers, func(w *workerproto.Writer) { w.String(dep.Path) }, nil); err != nil {
		t.Fatal(err)
	}
	if refs := c.r.Paths("referrers"); len(refs) != 1 || refs[0] != top.Path {
		t.Fatalf("referrers of %s: %v", dep.Path, refs)
	}
	// Referrers before references is refused, and the referrer is not
	// recorded.
	c2, _ := connect(t, newStore(), root)
	stream.Reset()
	w = workerproto.NewWriter(&stream)
	w.Uint64(2)
	w.WritePathInfo(top, true)
	w.Write(topNAR)
	w.WritePathInfo(dep, true)
	w.Write(depNAR)
	w.Flush()
	err = c2.op(workerproto.OpAddMultipleToStore, func(w *workerproto.Writer) { w.Bool(false); w.Bool(true) }, stream.Bytes())
	if !isDaemonError(err) || c2.isValid(top.Path) {
		t.Fatalf("AddMultipleToStore with a referrer first: %v", err)
	}
}

func TestAddToStoreComputesTheStorePath(t *testing.T) {
	c, _ := connect(t, newStore(), nobody)
	contents := "Derive([],[],[],\"x\",\"y\",[],[])"
	err := c.op(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("x.drv")
		w.String("text:sha256")
		w.Strings(nil)
		w.Bool(false)
	}, []byte(contents))
	if err != nil {
		t.Fatalf("AddToStore text: %v", err)
	}
	pi := c.r.ReadPathInfo(true)
	sum := nixhash.Sum(nixhash.SHA256, []byte(contents))
	want, _ := storepath.MakeText("x.drv", sum.Digest, nil)
	if pi.Path != want.String() || pi.CA != "text:sha256:"+sum.Nix32() {
		t.Fatalf("AddToStore text: %+v, want %s", pi, want)
	}
	// A flat file.
	err = c.op(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("file")
		w.String("fixed:sha1")
		w.Strings(nil)
		w.Bool(false)
	}, []byte("flat contents"))
	if err != nil {
		t.Fatalf("AddToStore flat: %v", err)
	}
	pi = c.r.ReadPathInfo(true)
	h := nixhash.Sum(nixhash.SHA1, []byte("flat contents"))
	want, _ = storepath.MakeFixedOutput("file", false, "sha1", h.Digest, nil)
	if pi.Path != want.String() {
		t.Fatalf("AddToStore flat: %s, want %s", pi.Path, want)
	}
	// A NAR hashed with sha512.
	narBytes := makeNAR(t, "recursive")
	err = c.op(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("tree")
		w.String("fixed:r:sha512")
		w.Strings(nil)
		w.Bool(false)
	}, narBytes)
	if err != nil {
		t.Fatalf("AddToStore recursive: %v", err)
	}
	pi = c.r.ReadPathInfo(true)
	h = nixhash.Sum(nixhash.SHA512, narBytes)
	want, _ = storepath.MakeFixedOutput("tree", true, "sha512", h.Digest, nil)
	if pi.Path != want.String() || pi.NarHash != narHash(narBytes) {
		t.Fatalf("AddToStore recursive: %+v, want %s", pi, want)
	}
	// A bad method is an error, and the stream stays in step.
	err = c.op(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("bad")
		w.String("fixed:r:crc32")
		w.Strings(nil)
		w.Bool(false)
	}, []byte("data"))
	if !isDaemonError(err) {
		t.Fatalf("AddToStore with a bad method: %v", err)
	}
	if !c.isValid(want.String()) {
		t.Fatal("connection out of step after an error")
	}
}

func TestOversizedAndTruncatedRequestsCloseTheConnection(t *testing.T) {
	for name, send := range map[string]func(w *workerproto.Writer){
		"huge string": func(w *workerproto.Writer) {
			w.Uint64(uint64(workerproto.OpIsValidPath))
			w.Uint64(1 << 40)
		},
		"huge list": func(w *workerproto.Writer) {
			w.Uint64(uint64(workerproto.OpQueryValidPaths))
			w.Uint64(1 << 50)
		},
		"unknown operation": func(w *workerproto.Writer) { w.Uint64(9999) },
		"obsolete operation": func(w *workerproto.Writer) {
			w.Uint64(uint64(workerproto.OpImportPaths))
		},
		"truncated": func(w *workerproto.Writer) {
			w.Uint64(uint64(workerproto.OpAddToStoreNar))
			w.String("/nix/store/" + nixbase32.EncodeToString(make([]byte, 20)) + "-x")
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, d := connect(t, newStore(), root)
			send(c.w)
			c.w.Flush()
			if name == "truncated" {
				c.conn.Close()
			} else if err := c.stderr(); !isDaemonError(err) {
				t.Fatalf("reply: %v", err)
			}
			if closed, err := d.closed(); !closed || err == nil {
				t.Fatalf("connection not closed with an error: %v %v", closed, err)
			}
		})
	}
}

func TestLimitsRefuseDeepTreesFromClients(t *testing.T) {
	st := newStore()
	st.Limits = narcastore.Limits{Limits: castore.Limits{MaxDepth: 64, MaxEntries: 1000, MaxNameLen: 255}, MaxNARSize: 1 << 20}
	c, _ := connect(t, st, root)
	var deep bytes.Buffer
	if err := nartest.Nested(&deep, 1000, "d"); err != nil {
		t.Fatal(err)
	}
	pi, _ := inputAddressed(t, "deep", "x")
	pi.NarHash, pi.NarSize = narHash(deep.Bytes()), uint64(deep.Len())
	err := c.addNAR(pi, deep.Bytes(), true)
	if !isDaemonError(err) || !strings.Contains(err.Error(), "max-depth") {
		t.Fatalf("a NAR 1000 deep under max-depth 64: %v", err)
	}
	// The same through AddToStore, which computes the path.
	err = c.op(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("deep")
		w.String("fixed:r:sha256")
		w.Strings(nil)
		w.Bool(false)
	}, deep.Bytes())
	if !isDaemonError(err) || !strings.Contains(err.Error(), "max-depth") {
		t.Fatalf("AddToStore of a NAR 1000 deep: %v", err)
	}
	big := strings.Repeat("x", 2<<20)
	err = c.op(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("big")
		w.String("fixed:sha256")
		w.Strings(nil)
		w.Bool(false)
	}, []byte(big))
	if !isDaemonError(err) || !strings.Contains(err.Error(), "max-nar-size") {
		t.Fatalf("AddToStore of a flat file over max-nar-size: %v", err)
	}
	for info, err := range st.PathInfos.List(context.Background()) {
		t.Fatalf("recorded %v %v", castore.NodeName(info.GetNode()), err)
	}
	if c.isValid(pi.Path) {
		t.Fatal("deep path recorded")
	}
}
