package castore_test

import (
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore/castorev1"
)

func unmarshal(raw []byte, d *castorev1.Directory) error { return proto.Unmarshal(raw, d) }

func marshal(d *castorev1.Directory) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	return b
}
