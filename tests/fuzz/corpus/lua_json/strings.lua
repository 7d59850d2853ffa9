local parts = {}
for w in string.gmatch("alpha beta gamma delta", "%a+") do
  parts[#parts + 1] = string.upper(w:sub(1, 1)) .. w:sub(2)
end
table.sort(parts)
return { words = parts, joined = table.concat(parts, ","), n = math.floor(2 ^ 40), pi = math.pi,
         big = math.maxinteger, small = math.mininteger, utf = "grüße ✓", empty = {} }
