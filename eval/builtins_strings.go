package eval

import (
	"slices"
	"strings"
	"unsafe"
)

// regex compiles re once per evaluator: match and split run in loops over
// the same few expressions. An invalid one is remembered as nil.
func (ev *Evaluator) regex(re string, anchored bool) *nixRegex {
	key := regexKey{re, anchored}
	if rx, ok := ev.regexes[key]; ok {
		if rx == nil {
			ev.Throwf("invalid regular expression '%s'", re)
		}
		return rx
	}
	src, ok := posixToGo(re)
	if !ok {
		ev.regexes[key] = nil
		ev.Throwf("invalid regular expression '%s'", re)
	}
	if anchored {
		src = "^(?:" + src + ")$"
	}
	rx, err := compileNixRegex(src)
	if err != nil {
		ev.regexes[key] = nil
		ev.Throwf("invalid regular expression '%s'", re)
	}
	ev.regexes[key] = rx
	return rx
}

// regexKey tells match's expressions (anchored) from split's.
type regexKey struct {
	re       string
	anchored bool
}

// registerStrings adds the string builtins.
func registerStrings(reg registerFunc) {
	reg("toString", 1, func(ev *Evaluator, a []Value) Value { return ev.CoerceToStringMore(a[0], false) })
	reg("stringLength", 1, func(ev *Evaluator, a []Value) Value {
		return ev.boxInt(Int(len(ev.coerceToString(a[0], ev.curPos, false, true).S)))
	})
	reg("substring", 3, func(ev *Evaluator, a []Value) Value {
		start := ev.intArg(a[0])
		n := ev.intArg(a[1])
		s := ev.coerceToString(a[2], ev.curPos, false, true)
		if start < 0 {
			ev.Throwf("negative start position in 'substring'")
		}
		end := int64(len(s.S))
		if n >= 0 && start+n < end {
			end = start + n
		}
		if start >= end {
			// "substring 0 0 a" is how lib's addContextFrom takes a's
			// context (for every part splitString returns)
			if len(s.Ctx()) == 0 {
				return emptyString
			}
			return StrCtx("", s.Ctx())
		}
		if start == 0 && end == int64(len(s.S)) {
			return s // removePrefix and the like when nothing is removed
		}
		return StrCtx(s.S[start:end], s.Ctx())
	})
	reg("concatStringsSep", 2, func(ev *Evaluator, a []Value) Value {
		// the call's position, for the coercion errors: forcing the
		// arguments moves ev.curPos to the calls inside them
		pos := ev.curPos
		sep := ev.ForceString(a[0])
		l := ev.ForceList(a[1])
		// the parts first, then the result in one allocation of its
		// size: a growing builder left 4 times the result as garbage
		var small [16]*String
		parts := small[:0]
		if len(l.Items) > len(small) {
			parts = make([]*String, 0, len(l.Items))
		}
		var ctx ContextUnion
		ctx.Add(sep.Ctx())
		n := 0
		for i := range l.Items {
			s := ev.coerceToString(ev.forceItem(l, i), pos, false, true)
			parts = append(parts, s)
			n += len(s.S)
			ctx.Add(s.Ctx())
		}
		if len(parts) > 1 {
			n += len(sep.S) * (len(parts) - 1)
		} else if len(parts) == 1 && len(sep.Ctx()) == 0 {
			return parts[0] // the one string, as it is
		}
		if n == 0 && ctx.Context() == nil {
			return emptyString
		}
		var b strings.Builder
		b.Grow(n)
		for i, s := range parts {
			if i > 0 {
				b.WriteString(sep.S)
			}
			b.WriteString(s.S)
		}
		return StrCtx(b.String(), ctx.Context())
	})
	reg("replaceStrings", 3, func(ev *Evaluator, a []Value) Value {
		from := ev.ForceList(a[0])
		to := ev.ForceList(a[1])
		if len(from.Items) != len(to.Items) {
			ev.Throwf("'from' and 'to' arguments to 'replaceStrings' have different lengths")
		}
		var local replacer
		var fromBuf [4]string
		var toBuf [4]*String
		r := ev.replLast
		if r == nil || r.from != from || r.to != to {
			local.froms, local.first, local.anyEmpty = ev.forcePatterns(from, fromBuf[:0])
			local.tos = toBuf[:0]
			if len(to.Items) <= len(toBuf) {
				local.tos = toBuf[:len(to.Items)]
			} else {
				local.tos = make([]*String, len(to.Items))
			}
			r = &local
			if ev.replSeen == [2]*List{from, to} {
				// (not through r, which would take local to the heap)
				kept := local.keep(from, to)
				ev.replLast = kept
				r = kept
			} else {
				ev.replSeen = [2]*List{from, to}
			}
		}
		s := ev.ForceString(a[2])
		var ctx ContextUnion
		ctx.Add(s.Ctx())
		// counted first, then written into one allocation of that size:
		// growing the result by appending copied it and left it several
		// times over as garbage
		_, n := r.run(ev, to, &ctx, s.S, nil, true)
		b, _ := r.run(ev, to, &ctx, s.S, make([]byte, 0, n), false)
		return StrCtx(unsafe.String(unsafe.SliceData(b), len(b)), ctx.Context())
	})
	reg("match", 2, func(ev *Evaluator, a []Value) Value {
		re := ev.str(a[0])
		s := ev.ForceString(a[1])
		rx := ev.regex(re, true)
		m := rx.submatch(s.S)
		if m == nil {
			return Null{}
		}
		out := allocList(len(m)/2 - 1)
		strs := make([]String, len(out.Items))
		groupStrings(out.Items, strs, s.S, m)
		return out
	})
	reg("split", 2, func(ev *Evaluator, a []Value) Value {
		re := ev.str(a[0])
		s := ev.ForceString(a[1])
		if isLiteralRegex(re) && re != "" {
			// no metacharacters: plain substring search. The parts are
			// Strings of one slab, and there is no slice of them in
			// between (strings.Split's)
			k := strings.Count(s.S, re)
			out := make([]Value, 2*k+1)
			strs := make([]String, k+1)
			rest := s.S
			for i := range k {
				j := strings.Index(rest, re)
				strs[i].S = rest[:j]
				out[2*i], out[2*i+1] = &strs[i], splitNoGroups
				rest = rest[j+len(re):]
			}
			strs[k].S = rest
			out[2*k] = &strs[k]
			return &List{Items: out}
		}
		rx := ev.regex(re, false)
		var small [32][]int
		ms := splitMatches(rx, s.S, small[:0])
		// everything split makes, but the result's list, in a slab per
		// kind: the parts between the matches, the groups' lists and
		// their items, and the strings of both
		g := rx.groups
		out := make([]Value, 2*len(ms)+1)
		strs := make([]String, len(ms)+1+len(ms)*g)
		var lists []List
		var items []Value
		if g > 0 {
			lists = make([]List, len(ms))
			items = make([]Value, len(ms)*g)
		}
		prev := 0
		for i, m := range ms {
			strs[i].S = s.S[prev:m[0]]
			out[2*i] = &strs[i]
			if g == 0 {
				out[2*i+1] = splitNoGroups
			} else {
				gi := items[i*g : (i+1)*g : (i+1)*g]
				groupStrings(gi, strs[len(ms)+1+i*g:], s.S, m)
				lists[i].Items = gi
				out[2*i+1] = &lists[i]
			}
			prev = m[1]
		}
		strs[len(ms)].S = s.S[prev:]
		out[2*len(ms)] = &strs[len(ms)]
		return &List{Items: out}
	})
}

// splitNoGroups is what split puts between the parts for an expression
// without groups (lists are never changed once made).
var splitNoGroups = &List{}

// groupStrings fills out with the groups of the match m in s: null for
// one that did not take part, else a string of strs.
func groupStrings(out []Value, strs []String, s string, m []int) {
	for i := range out {
		if lo := m[2*i+2]; lo < 0 {
			out[i] = Null{}
		} else {
			strs[i].S = s[lo:m[2*i+3]]
			out[i] = &strs[i]
		}
	}
}

func isLiteralRegex(re string) bool {
	return !strings.ContainsAny(re, `\.+*?()|[]{}^$`)
}

// replacer is the scan of replaceStrings, run twice: counting the
// result's length, then writing it.
type replacer struct {
	from, to *List
	froms    []string
	tos      []*String // forced at their first use
	// first[c] is 1 + the index of the first pattern that begins with
	// the byte c (at most 255: a bound to start from), 0 for none: runs
	// of bytes no pattern begins with are copied at once, and at the
	// others the patterns before that one are not tried
	first    [256]uint8
	anyEmpty bool
}

// forcePatterns forces replaceStrings' patterns into froms (appended to
// buf), with the table of their first bytes. As in C++ Nix, every
// pattern is forced (as a string, not coerced) before the subject. Nix
// 2.8 forces the replacements too; later versions (and the language
// suite's eval-okay-replacestrings) force only those used, as here.
func (ev *Evaluator) forcePatterns(from *List, buf []string) (froms []string, first [256]uint8, anyEmpty bool) {
	froms = buf
	for i := range from.Items {
		f := ev.str(ev.forceItem(from, i))
		froms = append(froms, f)
		if f == "" {
			anyEmpty = true
		} else {
			if first[f[0]] == 0 {
				first[f[0]] = uint8(min(i, 254) + 1)
			}
		}
	}
	return froms, first, anyEmpty
}

// keep is a copy of r's patterns (made on the builtin's stack) to be
// used again by the calls that follow with the same lists: wrappers
// such as toUpper, escapeXML and makeBinPath pass the same two lists on
// every call, and making the patterns anew each time was most of what
// those calls allocated (escaping's toUpper over 10,000 strings, 26
// pairs: 7 of its 24 MB). The lists' values never change once forced,
// and a replacement forced by a later call (or by one nested in forcing
// it) is the same value, so sharing them changes nothing. Only the
// second call in a row with a pair keeps its patterns, so calls with
// list literals (escapeShellArg's, new lists every time) or alternating
// pairs allocate nothing more; and they are kept once all are forced:
// one that throws (caught by tryEval) leaves nothing half-made behind.
func (r *replacer) keep(from, to *List) *replacer {
	return &replacer{from: from, to: to, froms: slices.Clone(r.froms), tos: slices.Clone(r.tos), first: r.first, anyEmpty: r.anyEmpty}
}

// run's ev and to are parameters, not fields of r: both leak (forcing
// stores into them), and a field that leaks takes the rest of the
// struct with it (escape analysis does not tell fields apart).
func (r *replacer) run(ev *Evaluator, to *List, ctx *ContextUnion, str string, b []byte, count bool) ([]byte, int) {
	n := 0
	put := func(s string) {
		if count {
			n += len(s)
		} else {
			b = append(b, s...)
		}
	}
	for p := 0; p <= len(str); {
		if !r.anyEmpty {
			q := p
			for q < len(str) && r.first[str[q]] == 0 {
				q++
			}
			put(str[p:q])
			p = q
			if p == len(str) {
				break
			}
		}
		found := false
		rest := str[p:]
		i0 := 0
		if !r.anyEmpty {
			i0 = int(r.first[rest[0]]) - 1
		}
		for i := i0; i < len(r.froms); i++ {
			f := r.froms[i]
			// the first bytes compared here, not in a call comparing
			// the strings: most patterns differ there (escapes' single
			// bytes do), and the call was most of a scan's time
			if len(f) == 0 || len(f) <= len(rest) && f[0] == rest[0] && rest[:len(f)] == f {
				found = true
				t := r.tos[i]
				if t == nil {
					t = ev.ForceString(ev.forceItem(to, i))
					r.tos[i] = t
				}
				if count {
					// once per call: the union takes each element once
					ctx.Add(t.Ctx())
				}
				put(t.S)
				if f == "" {
					if p < len(str) {
						put(str[p : p+1])
					}
					p++
				} else {
					p += len(f)
				}
				break
			}
		}
		if !found {
			if p < len(str) {
				put(str[p : p+1])
			}
			p++
		}
	}
	return b, n
}
