package nixdaemon

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// handshake is what a Nix 2.8 client sends before its first request.
func handshake() []byte {
	var b bytes.Buffer
	w := workerproto.NewWriter(&b)
	w.Uint64(workerproto.MagicClient)
	w.Uint64(workerproto.Version)
	w.Uint64(0)
	w.Uint64(0)
	w.Flush()
	return b.Bytes()
}

// request encodes one request the way testClient.op sends it.
func request(op workerproto.Op, args func(w *workerproto.Writer), framed []byte) []byte {
	var b bytes.Buffer
	w := workerproto.NewWriter(&b)
	w.Uint64(uint64(op))
	if args != nil {
		args(w)
	}
	if framed != nil {
		fw := w.Framed()
		fw.Write(framed)
		fw.Close()
	}
	w.Flush()
	return b.Bytes()
}

// FuzzServeConn feeds arbitrary requests to a trusted connection: the
// daemon never panics, and whatever it recorded is whole (references
// present, contents hashing to the recorded NAR hash).
func FuzzServeConn(f *testing.F) {
	pi, narBytes := inputAddressed(f, "hello", "hello world\n")
	add := func(w *workerproto.Writer) {
		w.String(pi.Path)
		w.String("")
		w.String(pi.NarHash)
		w.Strings(nil)
		w.Uint64(0)
		w.Uint64(pi.NarSize)
		w.Bool(false)
		w.Strings(nil)
		w.String("")
		w.Bool(false)
		w.Bool(true)
	}
	f.Add(request(workerproto.OpAddToStoreNar, add, narBytes))
	f.Add(append(request(workerproto.OpAddToStoreNar, add, narBytes),
		request(workerproto.OpNarFromPath, func(w *workerproto.Writer) { w.String(pi.Path) }, nil)...))
	f.Add(request(workerproto.OpAddToStore, func(w *workerproto.Writer) {
		w.String("x")
		w.String("fixed:r:sha256")
		w.Strings(nil)
		w.Bool(false)
	}, narBytes))
	var multi bytes.Buffer
	mw := workerproto.NewWriter(&multi)
	mw.Uint64(1)
	mw.WritePathInfo(pi, true)
	mw.Write(narBytes)
	mw.Flush()
	f.Add(request(workerproto.OpAddMultipleToStore, func(w *workerproto.Writer) { w.Bool(false); w.Bool(true) }, multi.Bytes()))
	f.Add(request(workerproto.OpQueryValidPaths, func(w *workerproto.Writer) { w.Strings([]string{pi.Path}); w.Bool(false) }, nil))
	f.Add(request(workerproto.OpSetOptions, func(w *workerproto.Writer) {
		for i := 0; i < 12; i++ {
			w.Uint64(0)
		}
		w.Uint64(1)
		w.String("build-timeout")
		w.String("5")
	}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		st := newStore()
		srv := &Server{Store: st}
		in := io.MultiReader(bytes.NewReader(handshake()), bytes.NewReader(data))
		srv.ServeConn(context.Background(), in, io.Discard, root)
		ctx := context.Background()
		for info, err := range st.PathInfos.List(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if err := pathinfo.CheckReferences(ctx, st.PathInfos, info); err != nil {
				t.Fatalf("recorded %s with a broken closure: %v", castore.NodeName(info.GetNode()), err)
			}
			_, sum, err := narcastore.CalculateNAR(ctx, castore.RenameNode(info.GetNode(), nil), st.Blobs, st.Dirs)
			if err != nil || !bytes.Equal(sum[:], info.GetNarinfo().GetNarSha256()) {
				t.Fatalf("recorded %s whose contents do not render to its NAR hash: %v", castore.NodeName(info.GetNode()), err)
			}
		}
	})
}
