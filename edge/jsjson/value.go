package jsjson

// Kind is the JavaScript type of a Value.
type Kind uint8

// The kinds of Value. Undefined is the kind of a nil *Value, i.e. of a
// property or element that does not exist.
const (
	Undefined Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"undefined", "null", "boolean", "number", "string", "array", "object"}

// String returns a lower-case name for k ("undefined", "null", "boolean",
// "number", "string", "array", "object").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Value is a parsed JSON value. It is immutable once Parse returns; a nil
// *Value stands for JavaScript undefined and all methods accept it.
type Value struct {
	kind Kind
	b    bool
	num  float64
	str  string
	// kids holds array elements (with empty keys) or object members in
	// JavaScript property order. Sharing one slice type for both lets the
	// parser carve them from a single slab.
	kids []Member
}

// Member is one property of an object.
type Member struct {
	Key   string // WTF-8, see the package documentation
	Value *Value
}

// Kind returns the kind of v; Undefined if v is nil.
func (v *Value) Kind() Kind {
	if v == nil {
		return Undefined
	}
	return v.kind
}

// Truthy reports whether v is truthy in JavaScript: false for undefined,
// null, false, 0, -0, NaN and "", true for everything else (including empty
// arrays and objects).
func (v *Value) Truthy() bool {
	if v == nil {
		return false
	}
	switch v.kind {
	case Bool:
		return v.b
	case Number:
		return v.num != 0 && v.num == v.num
	case String:
		return v.str != ""
	case Array, Object:
		return true
	}
	return false
}

// Get returns the value of the own property key of object v, or nil if v is
// not an object or has no such property. Lookup is a linear scan: callers
// read a handful of known keys, and objects are small.
func (v *Value) Get(key string) *Value {
	if v == nil || v.kind != Object {
		return nil
	}
	for i := range v.kids {
		if v.kids[i].Key == key {
			return v.kids[i].Value
		}
	}
	return nil
}

// Has reports whether v is an object with an own property key (whatever its
// value, including null).
func (v *Value) Has(key string) bool {
	return v.Get(key) != nil
}

// Str returns the string (WTF-8) if v is a string.
func (v *Value) Str() (string, bool) {
	if v == nil || v.kind != String {
		return "", false
	}
	return v.str, true
}

// Num returns the number if v is a number. It may be ±Inf (JSON.parse("1e400"))
// or -0.
func (v *Value) Num() (float64, bool) {
	if v == nil || v.kind != Number {
		return 0, false
	}
	return v.num, true
}

// Bool returns the boolean if v is a boolean.
func (v *Value) Bool() (bool, bool) {
	if v == nil || v.kind != Bool {
		return false, false
	}
	return v.b, true
}

// Len returns the number of elements of an array or of members of an
// object, and 0 for anything else.
func (v *Value) Len() int {
	if v == nil || (v.kind != Array && v.kind != Object) {
		return 0
	}
	return len(v.kids)
}

// Index returns element i of array v, or nil if v is not an array or i is out
// of range.
func (v *Value) Index(i int) *Value {
	if v == nil || v.kind != Array || i < 0 || i >= len(v.kids) {
		return nil
	}
	return v.kids[i].Value
}

// MemberAt returns member i (in JavaScript property order) of object v, or
// the zero Member if v is not an object or i is out of range. With Len it
// iterates members without allocating.
func (v *Value) MemberAt(i int) Member {
	if v == nil || v.kind != Object || i < 0 || i >= len(v.kids) {
		return Member{}
	}
	return v.kids[i]
}

// Members returns the members of object v in JavaScript property order, or
// nil if v is not an object. The slice is a fresh copy, so v stays immutable
// whatever the caller does with it.
func (v *Value) Members() []Member {
	if v == nil || v.kind != Object || len(v.kids) == 0 {
		return nil
	}
	return append([]Member(nil), v.kids...)
}
