package chart

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// Requests fall in the bucket of the 100 ms in which they ended, by result.
func TestBuckets(t *testing.T) {
	recs := []load.Record{{EndMS: 5}, {EndMS: 99}, {EndMS: 100, Failed: true}, {EndMS: 250}, {EndMS: 260, Failed: true}}
	ok, failed := Buckets(recs, 300)
	if !slices.Equal(ok, []float64{2, 0, 1, 0}) || !slices.Equal(failed, []float64{0, 1, 1, 0}) {
		t.Fatalf("ok %v, failed %v", ok, failed)
	}
}

// The pictures are PNGs of the promised size: two panels twice as tall as
// one.
func TestPicturesArePNG(t *testing.T) {
	dir := t.TempDir()
	recs := []load.Record{{EndMS: 10}, {EndMS: 2000, Failed: true}, {EndMS: 2100}}
	one, two := filepath.Join(dir, "one.png"), filepath.Join(dir, "two.png")
	if err := Timeline(one, Panel{Title: "ours", Requests: recs, Events: []Event{{AtMS: 2000, Label: "haproxy killed"}}}); err != nil {
		t.Fatal(err)
	}
	if err := Timeline(two, Panel{Title: "ours", Requests: recs}, Panel{Title: "original", Requests: recs}); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(dir, "dist.png")
	if err := Distribution(dist, "write to reload", "ms", Series{"ours", []float64{5, 7, 9}}, Series{"original", []float64{12000, 16000}}); err != nil {
		t.Fatal(err)
	}
	height := func(path string) int {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return img.Bounds().Dy()
	}
	if h1, h2 := height(one), height(two); h2 != 2*h1 {
		t.Fatalf("heights %d and %d, want the second twice the first", h1, h2)
	}
	height(dist)
}
