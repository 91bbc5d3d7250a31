package boot

import (
	"debug/elf"
	"fmt"
)

// isDynamicELF reports whether the binary needs a program interpreter.
func isDynamicELF(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}
