tofu import liveagg_rollup_table.zone indoor.rollup_zone
