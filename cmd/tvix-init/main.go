// Command tvix-init is the PID 1 of the initramfs `tvix boot` builds: it
// mounts the store from virtio-fs and runs what the kernel command line
// asks for (see package boot/guest). Build it static:
//
//	CGO_ENABLED=0 go build -ldflags='-s -w' -o tvix-init ./cmd/tvix-init
package main

import (
	"os"

	"github.com/tvix-go/tvix/boot/guest"
)

func main() { os.Exit(guest.Main()) }
