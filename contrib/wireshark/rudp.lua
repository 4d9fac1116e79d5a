-- Wireshark dissector for rudp versions 1, 2 and 3 (PROTOCOL.md in the rudp
-- repository; version 2's frames are in its §15.8, version 3's in §16.3).
-- Version 3's packets are sealed but for the handshake's NOISE frames; a
-- capture turned to clear by `rudp decrypt --keylog` shows every frame.
--
-- Install: copy this file to your personal Lua plugins folder
-- (Help > About Wireshark > Folders > Personal Lua Plugins), or run
--   wireshark -X lua_script:rudp.lua      /   tshark -X lua_script:rudp.lua
-- rudp runs on any UDP port: datagrams that start with "RU" (0x52 0x55)
-- and a known version byte are recognised heuristically; port 8091 (the
-- month service) is also registered. Filter with `rudp1` (Wireshark's built-in
-- "rudp" is Cisco's unrelated Reliable UDP); `rudp1.stream.id == 2` picks
-- one stream.

local rudp = Proto("rudp1", "rudp (reliable messages over UDP)")

local packet_types = { [1] = "INITIAL", [2] = "ACCEPT", [3] = "DATA", [4] = "RETRY" }
local SEALED_BIT = 0x40
local frame_types = {
  [0x00] = "PADDING", [0x01] = "PING", [0x02] = "ACK", [0x03] = "HANDSHAKE",
  [0x04] = "STREAM", [0x05] = "STREAM (FIN)", [0x06] = "MAX_DATA",
  [0x07] = "CLOSE (transport)", [0x08] = "CLOSE (application)", [0x09] = "TOKEN",
  [0x0a] = "PATH_CHALLENGE", [0x0b] = "PATH_RESPONSE",
  [0x0c] = "STREAM_PARAMETERS",
  [0x10] = "STREAM_N", [0x11] = "STREAM_N (FIN)",
  [0x12] = "STREAM_N (unordered)", [0x13] = "STREAM_N (unordered, FIN)",
  [0x14] = "MAX_STREAM_DATA", [0x15] = "MAX_STREAMS", [0x16] = "MAX_STREAMS_DATA",
  [0x17] = "RESET_STREAM", [0x18] = "STOP_SENDING", [0x19] = "SKIP", [0x1a] = "DATAGRAM",
  [0x1b] = "NOISE", [0x1c] = "SERVER_KEY", [0x1d] = "UNREADABLE",
  [0x1e] = "CIPHERS",
}
local transport_errors = {
  [0] = "NO_ERROR", [1] = "INTERNAL_ERROR", [2] = "PROTOCOL_VIOLATION",
  [3] = "FLOW_CONTROL_ERROR", [4] = "FINAL_SIZE_ERROR", [5] = "MESSAGE_TOO_LARGE",
  [6] = "CONNECTION_REFUSED", [7] = "INVALID_PARAMETERS", [8] = "INVALID_TOKEN",
  [9] = "STREAM_LIMIT_ERROR", [10] = "STREAM_STATE_ERROR",
}

local f = {
  magic = ProtoField.string("rudp1.magic", "Magic"),
  version = ProtoField.uint8("rudp1.version", "Version"),
  ptype = ProtoField.uint8("rudp1.type", "Packet type", base.HEX, packet_types, 0x3f),
  sealed = ProtoField.bool("rudp1.sealed", "Sealed with a pre-shared key", 8, nil, SEALED_BIT),
  sealed_data = ProtoField.bytes("rudp1.sealed_data", "Sealed frames and tag"),
  token = ProtoField.bytes("rudp1.token", "Token"),
  dcid = ProtoField.uint64("rudp1.dcid", "Destination connection ID", base.HEX),
  scid = ProtoField.uint64("rudp1.scid", "Source connection ID", base.HEX),
  pn = ProtoField.uint64("rudp1.pn", "Packet number"),
  crc = ProtoField.uint32("rudp1.crc32c", "CRC32C", base.HEX),
  vn_version = ProtoField.uint8("rudp1.vn.version", "Supported version"),
  frame = ProtoField.uint8("rudp1.frame", "Frame type", base.HEX, frame_types),
  padding = ProtoField.uint32("rudp1.padding.length", "Padding length"),
  ack_largest = ProtoField.uint64("rudp1.ack.largest", "Largest acknowledged"),
  ack_delay = ProtoField.uint64("rudp1.ack.delay", "ACK delay (us)"),
  ack_count = ProtoField.uint64("rudp1.ack.range_count", "ACK range count"),
  ack_first = ProtoField.uint64("rudp1.ack.first_range", "First ACK range"),
  ack_gap = ProtoField.uint64("rudp1.ack.gap", "Gap"),
  ack_len = ProtoField.uint64("rudp1.ack.range_length", "ACK range length"),
  ack_range = ProtoField.string("rudp1.ack.range", "Acknowledged"),
  hs_ack_delay = ProtoField.uint64("rudp1.handshake.max_ack_delay", "Max ack delay (us)"),
  hs_idle = ProtoField.uint64("rudp1.handshake.idle_timeout", "Idle timeout (ms)"),
  hs_max_data = ProtoField.uint64("rudp1.handshake.initial_max_data", "Initial max data"),
  hs_max_msg = ProtoField.uint64("rudp1.handshake.max_message_size", "Max message size"),
  hs_max_dgram = ProtoField.uint64("rudp1.handshake.max_datagram_size", "Max datagram size"),
  st_offset = ProtoField.uint64("rudp1.stream.offset", "Offset"),
  st_length = ProtoField.uint64("rudp1.stream.length", "Length"),
  st_fin = ProtoField.bool("rudp1.stream.fin", "FIN"),
  st_data = ProtoField.bytes("rudp1.stream.data", "Stream data"),
  max_data = ProtoField.uint64("rudp1.max_data", "Maximum data"),
  close_code = ProtoField.uint64("rudp1.close.code", "Error code"),
  close_reason = ProtoField.string("rudp1.close.reason", "Reason"),
  path_challenge = ProtoField.uint64("rudp1.path_challenge", "Challenge data", base.HEX),
  path_response = ProtoField.uint64("rudp1.path_response", "Response data", base.HEX),
  sp_streams = ProtoField.uint64("rudp1.stream_parameters.max_streams", "Max streams"),
  sp_window = ProtoField.uint64("rudp1.stream_parameters.stream_window", "Stream window"),
  sp_total = ProtoField.uint64("rudp1.stream_parameters.streams_window", "Window of all streams"),
  sp_dgram = ProtoField.uint64("rudp1.stream_parameters.max_datagram_payload", "Max datagram payload"),
  st_id = ProtoField.uint64("rudp1.stream.id", "Stream ID"),
  st_message_start = ProtoField.uint64("rudp1.stream.message_start", "Message start"),
  max_stream_data = ProtoField.uint64("rudp1.max_stream_data", "Maximum stream data"),
  max_streams = ProtoField.uint64("rudp1.max_streams", "Maximum streams"),
  max_streams_data = ProtoField.uint64("rudp1.max_streams_data", "Maximum data of all streams"),
  app_code = ProtoField.uint64("rudp1.stream.error_code", "Application error code"),
  final_size = ProtoField.uint64("rudp1.stream.final_size", "Final size"),
  skip_offset = ProtoField.uint64("rudp1.skip.offset", "Skipped from offset"),
  skip_length = ProtoField.uint64("rudp1.skip.length", "Skipped bytes"),
  skip_messages = ProtoField.uint64("rudp1.skip.messages", "Skipped messages"),
  dgram_length = ProtoField.uint64("rudp1.datagram.length", "Datagram length"),
  dgram_data = ProtoField.bytes("rudp1.datagram.data", "Datagram data"),
  noise_length = ProtoField.uint64("rudp1.noise.length", "Noise message length"),
  noise_data = ProtoField.bytes("rudp1.noise.message", "Noise handshake message"),
  server_key = ProtoField.bytes("rudp1.server_key", "Server static public key"),
  unreadable = ProtoField.bytes("rudp1.unreadable", "Ephemeral key of an unread message"),
  cipher = ProtoField.uint8("rudp1.cipher", "Packet cipher", base.DEC,
    { [1] = "ChaCha20-Poly1305", [2] = "AES-256-GCM", [3] = "AEGIS-256X2" }),
}
rudp.fields = f

local ef_malformed = ProtoExpert.new("rudp1.malformed", "Malformed rudp frame", expert.group.MALFORMED, expert.severity.ERROR)
rudp.experts = { ef_malformed }

-- A variable-length integer (PROTOCOL.md §4.1) at `off`: returns the value
-- as a UInt64, its encoded length, and a plain number (exact below 2^53).
local function varint(tvb, off)
  if off >= tvb:len() then return nil end
  local first = tvb(off, 1):uint()
  local len = 2 ^ math.floor(first / 64)
  if off + len > tvb:len() then return nil end
  local v
  if len == 1 then
    v = UInt64.new(first % 64, 0)
  elseif len == 2 then
    v = UInt64.new(tvb(off, 2):uint() % 16384, 0)
  elseif len == 4 then
    v = UInt64.new(tvb(off, 4):uint() % 1073741824, 0)
  else
    v = UInt64.new(tvb(off + 4, 4):uint(), tvb(off, 4):uint() % 1073741824)
  end
  return v, len, tonumber(tostring(v))
end

-- Adds one varint field; returns its number value and the next offset.
local function add_varint(tree, field, tvb, off)
  local v, len, n = varint(tvb, off)
  if v == nil then
    tree:add_proto_expert_info(ef_malformed, "truncated varint")
    return nil, tvb:len()
  end
  tree:add(field, tvb(off, len), v)
  return n, off + len
end

local function dissect_frames(tvb, tree, off, stop)
  local summary = {}
  while off < stop do
    local ftype = tvb(off, 1):uint()
    local start = off
    local ft = tree:add(rudp, tvb(off, 1), (frame_types[ftype] or "unknown") .. " frame")
    ft:add(f.frame, tvb(off, 1))
    off = off + 1
    table.insert(summary, frame_types[ftype] or string.format("0x%02x", ftype))
    if ftype == 0x00 then
      while off < stop and tvb(off, 1):uint() == 0 do off = off + 1 end
      ft:add(f.padding, tvb(start, off - start), off - start)
    elseif ftype == 0x01 then
      -- PING: no fields.
    elseif ftype == 0x02 then
      local largest, count, first
      largest, off = add_varint(ft, f.ack_largest, tvb, off)
      _, off = add_varint(ft, f.ack_delay, tvb, off)
      count, off = add_varint(ft, f.ack_count, tvb, off)
      first, off = add_varint(ft, f.ack_first, tvb, off)
      if largest == nil or count == nil or first == nil then return summary end
      local high, low = largest, largest - first
      ft:add(f.ack_range, tvb(start, off - start), string.format("%d-%d", low, high))
      for _ = 1, count do
        local gap, len
        gap, off = add_varint(ft, f.ack_gap, tvb, off)
        len, off = add_varint(ft, f.ack_len, tvb, off)
        if gap == nil or len == nil then return summary end
        high = low - gap - 2
        low = high - len
        ft:add(f.ack_range, tvb(start, off - start), string.format("%d-%d", low, high))
      end
    elseif ftype == 0x03 then
      _, off = add_varint(ft, f.hs_ack_delay, tvb, off)
      _, off = add_varint(ft, f.hs_idle, tvb, off)
      _, off = add_varint(ft, f.hs_max_data, tvb, off)
      _, off = add_varint(ft, f.hs_max_msg, tvb, off)
      _, off = add_varint(ft, f.hs_max_dgram, tvb, off)
    elseif ftype == 0x04 or ftype == 0x05 then
      local len
      _, off = add_varint(ft, f.st_offset, tvb, off)
      len, off = add_varint(ft, f.st_length, tvb, off)
      ft:add(f.st_fin, tvb(start, 1), ftype == 0x05)
      if len == nil or off + len > stop then
        ft:add_proto_expert_info(ef_malformed, "stream data beyond the packet")
        return summary
      end
      if len > 0 then ft:add(f.st_data, tvb(off, len)) end
      off = off + len
    elseif ftype == 0x06 then
      _, off = add_varint(ft, f.max_data, tvb, off)
    elseif ftype == 0x07 or ftype == 0x08 then
      local code, rlen
      code, off = add_varint(ft, f.close_code, tvb, off)
      if ftype == 0x07 and code ~= nil and transport_errors[code] then
        ft:append_text(" (" .. transport_errors[code] .. ")")
      end
      rlen, off = add_varint(ft, f.close_reason, tvb, off)
      if rlen == nil or off + rlen > stop then return summary end
      if rlen > 0 then ft:add(f.close_reason, tvb(off, rlen)) end
      off = off + rlen
    elseif ftype == 0x09 then
      local _, vlen, tlen = varint(tvb, off)
      if tlen == nil or off + vlen + tlen > stop then return summary end
      off = off + vlen
      ft:add(f.token, tvb(off, tlen))
      off = off + tlen
    elseif ftype == 0x0a or ftype == 0x0b then
      -- Path validation (§5.9, §6.9): 8 bytes to echo, or echoed.
      if off + 8 > stop then
        ft:add_proto_expert_info(ef_malformed, "path data beyond the packet")
        return summary
      end
      ft:add(ftype == 0x0a and f.path_challenge or f.path_response, tvb(off, 8))
      off = off + 8
    elseif ftype == 0x0c then
      _, off = add_varint(ft, f.sp_streams, tvb, off)
      _, off = add_varint(ft, f.sp_window, tvb, off)
      _, off = add_varint(ft, f.sp_total, tvb, off)
      _, off = add_varint(ft, f.sp_dgram, tvb, off)
    elseif ftype >= 0x10 and ftype <= 0x13 then
      -- STREAM_N (§15.8.2): bit 0x01 FIN, bit 0x02 a message start.
      local id, len
      id, off = add_varint(ft, f.st_id, tvb, off)
      _, off = add_varint(ft, f.st_offset, tvb, off)
      if bit.band(ftype, 0x02) ~= 0 then
        _, off = add_varint(ft, f.st_message_start, tvb, off)
      end
      len, off = add_varint(ft, f.st_length, tvb, off)
      ft:add(f.st_fin, tvb(start, 1), bit.band(ftype, 0x01) ~= 0)
      if len == nil or off + len > stop then
        ft:add_proto_expert_info(ef_malformed, "stream data beyond the packet")
        return summary
      end
      if len > 0 then ft:add(f.st_data, tvb(off, len)) end
      off = off + len
      if id ~= nil then summary[#summary] = string.format("STREAM_N %d", id) end
    elseif ftype == 0x14 then
      _, off = add_varint(ft, f.st_id, tvb, off)
      _, off = add_varint(ft, f.max_stream_data, tvb, off)
    elseif ftype == 0x15 then
      _, off = add_varint(ft, f.max_streams, tvb, off)
    elseif ftype == 0x16 then
      _, off = add_varint(ft, f.max_streams_data, tvb, off)
    elseif ftype == 0x17 then
      _, off = add_varint(ft, f.st_id, tvb, off)
      _, off = add_varint(ft, f.app_code, tvb, off)
      _, off = add_varint(ft, f.final_size, tvb, off)
    elseif ftype == 0x18 then
      _, off = add_varint(ft, f.st_id, tvb, off)
      _, off = add_varint(ft, f.app_code, tvb, off)
    elseif ftype == 0x19 then
      _, off = add_varint(ft, f.st_id, tvb, off)
      _, off = add_varint(ft, f.skip_offset, tvb, off)
      _, off = add_varint(ft, f.skip_length, tvb, off)
      _, off = add_varint(ft, f.skip_messages, tvb, off)
    elseif ftype == 0x1a then
      local len
      len, off = add_varint(ft, f.dgram_length, tvb, off)
      if len == nil or off + len > stop then
        ft:add_proto_expert_info(ef_malformed, "datagram beyond the packet")
        return summary
      end
      if len > 0 then ft:add(f.dgram_data, tvb(off, len)) end
      off = off + len
    elseif ftype == 0x1b then
      local len
      len, off = add_varint(ft, f.noise_length, tvb, off)
      if len == nil or off + len > stop then
        ft:add_proto_expert_info(ef_malformed, "Noise message beyond the packet")
        return summary
      end
      if len > 0 then ft:add(f.noise_data, tvb(off, len)) end
      off = off + len
    elseif ftype == 0x1c or ftype == 0x1d then
      if off + 32 > stop then
        ft:add_proto_expert_info(ef_malformed, "key beyond the packet")
        return summary
      end
      ft:add(ftype == 0x1c and f.server_key or f.unreadable, tvb(off, 32))
      off = off + 32
    elseif ftype == 0x1e then
      -- Only inside a Noise payload (§16.5), so seen only where a tool
      -- decoded one; 1 to 8 identifiers.
      local count = off < stop and tvb(off, 1):uint() or 0
      if count < 1 or count > 8 or off + 1 + count > stop then
        ft:add_proto_expert_info(ef_malformed, "cipher list beyond the packet")
        return summary
      end
      off = off + 1
      for _ = 1, count do
        ft:add(f.cipher, tvb(off, 1))
        off = off + 1
      end
    else
      ft:add_proto_expert_info(ef_malformed, "unknown frame type")
      return summary
    end
    ft:set_len(off - start)
  end
  return summary
end

function rudp.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  if len < 4 or tvb(0, 2):string() ~= "RU" then return 0 end
  pinfo.cols.protocol = "rudp"
  local t = tree:add(rudp, tvb(), "rudp")
  t:add(f.magic, tvb(0, 2))
  local version = tvb(2, 1):uint()
  t:add(f.version, tvb(2, 1))
  if version == 0 then
    -- Version negotiation (§3.5).
    t:add(f.dcid, tvb(4, 8))
    t:add(f.scid, tvb(12, 8))
    for i = 20, len - 5 do t:add(f.vn_version, tvb(i, 1)) end
    t:add(f.crc, tvb(len - 4, 4))
    pinfo.cols.info = "VERSION_NEGOTIATION"
    return len
  end
  local tbyte = tvb(3, 1):uint()
  local ptype = bit.band(tbyte, 0x3f)
  local sealed = bit.band(tbyte, SEALED_BIT) ~= 0
  t:add(f.ptype, tvb(3, 1))
  t:add(f.sealed, tvb(3, 1))
  t:add(f.dcid, tvb(4, 8))
  local off = 12
  if ptype == 1 or ptype == 2 or ptype == 4 then
    t:add(f.scid, tvb(12, 8))
    off = 20
  end
  -- §3.6, §16.3: every packet ends with a CRC32C but a DATA packet of
  -- version 3 (type byte 0x43), which ends with its AEAD tag.
  local crc_len = 4
  if version == 3 and tbyte == 0x43 then crc_len = 0 end
  local stop = len - crc_len
  if stop < off + 8 then return len end
  t:add(f.pn, tvb(off, 8))
  local pn = tvb(off, 8):uint64()
  off = off + 8
  local frames
  if sealed then
    -- §16.3: a version-3 ACCEPT starts with its NOISE frame in clear.
    local clear = {}
    if version == 3 and ptype == 2 and stop > off and tvb(off, 1):uint() == 0x1b then
      local v, vlen, nlen = varint(tvb, off + 1)
      if v ~= nil and off + 1 + vlen + nlen <= stop then
        local noise_end = off + 1 + vlen + nlen
        clear = dissect_frames(tvb, t, off, noise_end)
        off = noise_end
      end
    end
    -- §3.7, §16.5: without the key the frames cannot be read.
    if stop > off then t:add(f.sealed_data, tvb(off, stop - off)) end
    frames = clear
    table.insert(frames, "sealed")
  else
    frames = dissect_frames(tvb, t, off, stop)
  end
  if crc_len > 0 then t:add(f.crc, tvb(stop, 4)) end
  pinfo.cols.info = string.format("%s pn=%s [%s]", packet_types[ptype] or "?", tostring(pn), table.concat(frames, ", "))
  return len
end

local function heuristic(tvb, pinfo, tree)
  if tvb:len() < 24 or tvb(0, 2):string() ~= "RU" then return false end
  local v = tvb(2, 1):uint()
  if v > 3 then return false end
  rudp.dissector(tvb, pinfo, tree)
  return true
end

rudp:register_heuristic("udp", heuristic)
DissectorTable.get("udp.port"):add(8091, rudp)
