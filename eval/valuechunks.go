package eval

// Builders for lists whose length is not known up front (genericClosure's
// result and its queue). Appending to one slice doubles it: the items are
// copied at each doubling, the old arrays are garbage until the next
// cycle, and the final array is up to twice the list (genericClosure of
// 160,000 nodes allocated 15 MB in its two slices, more than the nodes
// themselves; C++ Nix's vector of pointers and list of nodes are freed
// and reused as it goes).

// chunkItems is the items per chunk (64 KB): large enough that the
// bookkeeping is noise, small enough that a short list's one chunk is
// not much waste.
const chunkItems = 4096

// valueChunks collects values in chunks and returns them as one exact
// list: each item is written once and copied once, and nothing is
// garbage but the chunks.
type valueChunks struct {
	full [][]Value // each chunkItems long
	last []Value   // the chunk being filled; grown by append until chunkItems
	n    int
}

func (c *valueChunks) add(v Value) {
	if len(c.last) == chunkItems {
		c.full = append(c.full, c.last)
		c.last = make([]Value, 0, chunkItems)
	}
	c.last = append(c.last, v)
	c.n++
}

// list returns the items in order. A list of at most one chunk is that
// chunk (append's slack is small there); a longer one is copied into an
// exact array, so the chunks can go.
func (c *valueChunks) list() []Value {
	if len(c.full) == 0 {
		return c.last
	}
	out := make([]Value, c.n)
	prefault(out)
	i := 0
	for _, ch := range c.full {
		i += copyItems(out[i:], ch)
	}
	copyItems(out[i:], c.last)
	return out
}

// valueQueue is a FIFO of values in blocks: a block is reused once its
// items are taken, so the queue allocates about its longest length, and
// nothing is copied. Blocks start small and double up to chunkItems (the
// module system runs a closure of a few modules per submodule value, and a
// first block of 64 KB each time was a third of what modules.nix allocated).
type valueQueue struct {
	blocks [][]Value // blocks[0][head:] first, the last block filled to tail
	head   int
	tail   int
	spare  []Value // an emptied block, for the next one needed
	next   int     // the size of the next new block
}

// firstQueueBlock is the size of a queue's first block.
const firstQueueBlock = 16

func (q *valueQueue) empty() bool {
	return len(q.blocks) == 0 || (len(q.blocks) == 1 && q.head == q.tail)
}

func (q *valueQueue) push(v Value) {
	if len(q.blocks) == 0 || q.tail == len(q.blocks[len(q.blocks)-1]) {
		b := q.spare
		q.spare = nil
		if len(q.blocks) > 0 && len(b) < q.next {
			// a spare smaller than the blocks now needed (the queue
			// grew since) is left for the collector
			b = nil
		}
		if b == nil {
			b = make([]Value, max(q.next, firstQueueBlock))
			q.next = min(2*len(b), chunkItems)
		}
		q.blocks = append(q.blocks, b)
		q.tail = 0
	}
	q.blocks[len(q.blocks)-1][q.tail] = v
	q.tail++
}

// pop takes the first value; the queue must not be empty.
func (q *valueQueue) pop() Value {
	b := q.blocks[0]
	v := b[q.head]
	b[q.head] = nil // the queue does not keep what it handed out alive
	q.head++
	if len(q.blocks) == 1 && q.head == q.tail {
		// the last block emptied is reset in place: the next push
		// refills it from the start
		q.head, q.tail = 0, 0
	} else if q.head == len(b) {
		// the first block is used up: it is the spare now
		q.spare = b
		copy(q.blocks, q.blocks[1:])
		q.blocks[len(q.blocks)-1] = nil
		q.blocks = q.blocks[:len(q.blocks)-1]
		q.head = 0
	}
	return v
}
