-- A raw copy for ad-hoc analysis: every column, whatever the app adds or drops.
select * from {{ source('shop', 'customers') }}
