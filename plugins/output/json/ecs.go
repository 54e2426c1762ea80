package json

import "fmt"

// fieldLayout is the naming of the fields: ulogd2's keys or ECS.
type fieldLayout uint8

const (
	layoutUlogd2 fieldLayout = iota
	layoutECS
)

func parseLayout(s string) (fieldLayout, error) {
	switch s {
	case "ulogd2", "":
		return layoutUlogd2, nil
	case "ecs":
		return layoutECS, nil
	}
	return 0, fmt.Errorf("unknown layout %q: want \"ulogd2\" or \"ecs\"", s)
}
