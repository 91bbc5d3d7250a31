package eval

import "strconv"

// registerVersions adds the builtins that split and compare versions and
// derivation names.
func registerVersions(reg registerFunc) {
	reg("compareVersions", 2, func(ev *Evaluator, a []Value) Value {
		return Int(CompareVersions(ev.str(a[0]), ev.str(a[1])))
	})
	reg("splitVersion", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		var out []Value
		p := 0
		for p < len(s) {
			c := nextComponent(s, &p)
			if c == "" {
				break
			}
			out = append(out, Str(c))
		}
		return &List{Items: out}
	})
	reg("parseDrvName", 1, func(ev *Evaluator, a []Value) Value {
		s := ev.str(a[0])
		name, version := s, ""
		for i := 0; i < len(s); i++ {
			if s[i] == '-' && i+1 < len(s) && !isAlpha(s[i+1]) {
				name, version = s[:i], s[i+1:]
				break
			}
		}
		return NewAttrs([]Attr{MkAttr("name", Str(name)), MkAttr("version", Str(version))})
	})
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigitB(c byte) bool { return c >= '0' && c <= '9' }

func nextComponent(s string, p *int) string {
	for *p < len(s) && (s[*p] == '.' || s[*p] == '-') {
		*p++
	}
	if *p >= len(s) {
		return ""
	}
	start := *p
	if isDigitB(s[*p]) {
		for *p < len(s) && isDigitB(s[*p]) {
			*p++
		}
	} else {
		for *p < len(s) && !isDigitB(s[*p]) && s[*p] != '.' && s[*p] != '-' {
			*p++
		}
	}
	return s[start:*p]
}

func componentsLT(c1, c2 string) bool {
	n1, e1 := strconv.Atoi(c1)
	n2, e2 := strconv.Atoi(c2)
	switch {
	case e1 == nil && e2 == nil:
		return n1 < n2
	case c1 == "" && e2 == nil:
		return true
	case c1 == "pre" && c2 != "pre":
		return true
	case c2 == "pre":
		return false
	case e2 == nil:
		return true
	case e1 == nil:
		return false
	}
	return c1 < c2
}

// CompareVersions is builtins.compareVersions.
func CompareVersions(v1, v2 string) int {
	p1, p2 := 0, 0
	for p1 < len(v1) || p2 < len(v2) {
		c1 := nextComponent(v1, &p1)
		c2 := nextComponent(v2, &p2)
		if componentsLT(c1, c2) {
			return -1
		}
		if componentsLT(c2, c1) {
			return 1
		}
	}
	return 0
}
