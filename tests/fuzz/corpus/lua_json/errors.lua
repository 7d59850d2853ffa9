-- values iac refuses: each is an error message, never a crash
local t = { 1, 2, nil, 4 }
local cyc = { name = "loop" }
cyc.self = cyc
return t, cyc, { f = function() end }, { [1] = "a", x = "b" }
