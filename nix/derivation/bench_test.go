package derivation

import (
	"os"
	"testing"
)

func benchDrv(b *testing.B) ([]byte, *Derivation) {
	data, err := os.ReadFile(fooDrv)
	if err != nil {
		b.Fatal(err)
	}
	d, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	return data, d
}

func BenchmarkParse(b *testing.B) {
	data, _ := benchDrv(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkATerm(b *testing.B) {
	data, d := benchDrv(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		d.ATerm()
	}
}

// BenchmarkOutputPaths is the per-derivation work of derivationStrict:
// output paths (one modulo hash) plus the .drv path.
func BenchmarkOutputPaths(b *testing.B) {
	_, d := benchDrv(b)
	for b.Loop() {
		c := d.Clone()
		if err := c.CalculateOutputPaths("foo", testdataModulo); err != nil {
			b.Fatal(err)
		}
		if _, err := c.DrvPath("foo"); err != nil {
			b.Fatal(err)
		}
	}
}
