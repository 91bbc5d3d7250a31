//go:build !linux

package eval

import "os"

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

func lstatType(p string) (FileType, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return FileUnknown, err
	}
	return modeType(fi.Mode()), nil
}
