package sink

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

var kerrTopicExists = kerr.TopicAlreadyExists

func isTopicExists(err error) bool { return errors.Is(err, kerr.TopicAlreadyExists) }
