"use strict";
siyu.add({ "page.till": ["核销台（门店收银）", "Till (store staff)"], "page.dashboard": ["运营后台（品牌运营）", "Dashboard (brand operators)"],
            "page.guide": ["导购工作台（企业微信）", "Guide workbench (WeCom)"] });
