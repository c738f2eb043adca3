terraform {
  required_version = ">= 1.6"
  required_providers {
    liveagg = {
      source  = "liveagg/liveagg"
      version = ">= 0.1"
    }
  }
}
