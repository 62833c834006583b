package main

import "os"

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
