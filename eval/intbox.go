package eval

import "unsafe"

// intBoxes is how many boxed integers share one allocation.
const intBoxes = 16

// intBoxSlab holds the integers boxInt has put in Values.
type intBoxSlab [intBoxes]Int

// intType is the type word of an Int in a Value.
var intType = func() unsafe.Pointer {
	var v Value = Int(1 << 40)
	return (*eface)(unsafe.Pointer(&v)).typ
}()

// eface is the layout of a Value (an empty interface) in the gc
// toolchain: the type word and a pointer to the data.
type eface struct {
	typ, data unsafe.Pointer
}

// boxInt is n as a Value. Converting an Int to a Value allocates 8
// bytes from the runtime (its tiny allocator, ~20 ns each) unless it is
// below 256; arithmetic and genList's indices make millions (concatLists
// of 800,000 pairs spent a tenth of its time there). Here the boxes come
// 16 to an allocation of 128 bytes. A box is never written after it is
// returned, as the runtime's are not. One surviving integer keeps its
// slab's 128 bytes alive where the runtime's box kept 16 (two integers
// to a tiny block): a bounded cost, and integers are rare in what an
// evaluation keeps.
func (ev *Evaluator) boxInt(n Int) Value {
	if uint64(n) < 256 {
		return n // the runtime's static boxes
	}
	if ev.intNext == intBoxes || ev.intSlab == nil {
		ev.intSlab, ev.intNext = new(intBoxSlab), 0
	}
	p := &ev.intSlab[ev.intNext]
	ev.intNext++
	*p = n
	return *(*Value)(unsafe.Pointer(&eface{typ: intType, data: unsafe.Pointer(p)}))
}
