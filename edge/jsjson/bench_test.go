package jsjson

import (
	"os"
	"testing"
)

func loadStatus(b *testing.B) []byte {
	b.Helper()
	data, err := os.ReadFile("testdata/status.json")
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkParse(b *testing.B) {
	data := loadStatus(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseString(b *testing.B) {
	data := string(loadStatus(b))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseString(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	v, err := Parse(loadStatus(b))
	if err != nil {
		b.Fatal(err)
	}
	buf := v.AppendJSON(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = v.AppendJSON(buf[:0])
	}
}

func BenchmarkAppendJSONFresh(b *testing.B) {
	v, err := Parse(loadStatus(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = v.AppendJSON(nil)
	}
}

func BenchmarkCanonical(b *testing.B) {
	msg := wrapUpdate(loadStatus(b))
	out, ok := Canonical(nil, msg)
	if !ok {
		b.Fatal("bailed out")
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		out, _ = Canonical(out[:0], msg)
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	msg := wrapUpdate(loadStatus(b))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		if _, ok := DecodeEnvelope(msg); !ok {
			b.Fatal("bailed out")
		}
	}
}

// BenchmarkParseEnvelope is the tree path DecodeEnvelope replaces.
func BenchmarkParseEnvelope(b *testing.B) {
	msg := wrapUpdate(loadStatus(b))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		v, err := Parse(msg)
		if err != nil {
			b.Fatal(err)
		}
		_ = v.Get("payload").AppendJSON(nil)
	}
}
