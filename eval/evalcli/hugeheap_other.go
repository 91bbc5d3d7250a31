//go:build !linux

package evalcli

func prepareHugeHeap(int) {}
