// Command mutationscore prints how many mutants a gremlins JSON result
// (gremlins unleash -o FILE) killed and how many lived: "killed lived".
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type result struct {
	Files []struct {
		Mutations []struct {
			Status string `json:"status"`
		} `json:"mutations"`
	} `json:"files"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mutationscore RESULT.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutationscore:", err)
		os.Exit(1)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintln(os.Stderr, "mutationscore:", err)
		os.Exit(1)
	}
	killed, lived := 0, 0
	for _, f := range r.Files {
		for _, m := range f.Mutations {
			switch m.Status {
			case "KILLED":
				killed++
			case "LIVED":
				lived++
			}
		}
	}
	fmt.Println(killed, lived)
}
