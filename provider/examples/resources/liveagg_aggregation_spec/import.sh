tofu import liveagg_aggregation_spec.zone indoor-l2-zone
